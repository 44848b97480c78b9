"""The nightly retrain job, its scheduler, and the deployment files (Docker, compose, Kubernetes)."""
