"""Training data: short/long pairs and SID's conventions, decoded-file caches, random patches, noise simulation.

pairs (find_pairs, read_pair_list), sid (splits, the ratio rule, the test selection), sampling (caches,
patches), noise (the noise model), calibrate (dark frames), unprocess (sRGB -> mosaic), make_pairs.
"""
