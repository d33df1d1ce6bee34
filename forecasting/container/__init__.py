"""The SageMaker "bring your own container" entrypoints: ``train`` and ``serve``."""
