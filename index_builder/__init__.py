"""faiss index building over a bundle's item table, with measured recall (torch-free)."""
