"""Files in and out: RAW reading and packing (rawpy/LibRaw, Bayer and X-Trans), DNG and 16-bit PNG writing, atomic files.

raw (open, load, exposure time), cfa (the sensor's colour filter array), pack and xtrans (SID's
``pack_raw``), render (SID's ground truth, orientation), sid_names (SID's file names), dng, png, atomic.
"""
