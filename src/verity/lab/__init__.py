"""The lab: small generators (autoencoder, GAN, diffusion) and code-made forgeries for training."""
