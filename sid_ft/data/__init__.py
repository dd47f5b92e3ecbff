"""Training data: short/long pairs and SID's conventions, decoded-file caches, random patches, noise simulation."""
