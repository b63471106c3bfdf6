"""The pipeline: export -> prepare -> lower -> compile -> run/check -> time -> record, one case per worker process, a sweep over a plan."""
