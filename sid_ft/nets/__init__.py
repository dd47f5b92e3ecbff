"""Networks: the SID U-Net, the g_add additions (config, layers, head, folding), precision, checkpoints."""
