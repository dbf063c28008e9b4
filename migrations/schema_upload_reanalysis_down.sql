-- Nothing to undo: the uploads analysed again keep their new analysis.
SELECT 1;
