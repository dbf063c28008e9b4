DROP TABLE IF EXISTS mashup_generation_jobs;
