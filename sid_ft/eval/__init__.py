"""Scoring and showing results: PSNR/SSIM (SID's protocol) and contact sheets."""
