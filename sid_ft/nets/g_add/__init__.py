"""The g_add additions to a frozen SID network, one sub-package (as PEFT's ``tuners/lora``).

``config`` (the design, no TensorFlow), ``layers`` (additions beside every convolution),
``head`` (the refinement head after the network), ``fold`` (:func:`fold_g_add`: the additions
folded into plain conv weights for inference).  The U-Net with them is
:func:`sid_ft.nets.network.sid_network`.
"""
