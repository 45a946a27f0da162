"""Assets, checks, jobs, schedules and sensors: `dg.load_from_defs_folder` loads every module."""
