"""Network families, one module each (stylegan2, swapae, psp, e4e, pix2pix, cyclegan). Import the module you
need; each registers its classes with ``ganedit.formats.native`` so ``ganedit.load`` can rebuild them."""
