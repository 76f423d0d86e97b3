"""Faces: MTCNN detection with five landmarks, alignment to a canonical template, FaceNet
embeddings and self-blended training images.

Submodules import their heavy dependencies lazily; importing this package is cheap.
"""
