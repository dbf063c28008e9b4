"""Share codes, for blends and mashups alike: the code format (``codes``), issuing and
revoking them on a row (``store``), and the limit on guessing them (``guard``)."""
