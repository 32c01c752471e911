"""The pipeline stage: HTTP app, job lifecycle and on-disk state, PM client, shared-volume paths."""
