"""The recommendation service: FastAPI over the bundle's ONNX encoder and faiss index.

Runs on onnxruntime, faiss and numpy; it never imports torch.
"""
