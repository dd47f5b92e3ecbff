"""Files in and out: RAW reading and packing (rawpy/LibRaw, Bayer and X-Trans), DNG and 16-bit PNG writing, atomic files."""
