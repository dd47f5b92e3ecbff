"""Process plumbing for long jobs: the train dir's lock and preemption by signals."""
