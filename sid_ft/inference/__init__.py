"""Running a model on RAW files: the predictor (tiles), batch jobs, shards and run summaries."""
