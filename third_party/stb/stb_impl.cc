// The one translation unit that compiles stb's image decoder and encoder.
// PNG only: the data engine decodes JPEG backgrounds with libjpeg-turbo
// (Pillow's pixels), and stb's JPEG decoder reads out of bounds on hostile
// input (fuzz/findings/stb_jpeg_huffman_index_257.jpg).
#define STBI_ONLY_PNG
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
