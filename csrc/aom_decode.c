/* AV1 bitstream to planes with libaom's decoder. Only the tests call this (they check what
 * the encoder wrote by decoding it); it sits in its own file so a binary that never calls it
 * does not link libaom's decoder. */
#include <stdint.h>
#include <stdio.h>
#include <aom/aom_decoder.h>
#include <aom/aomdx.h>

#include "imgate_aom.h"

int imgate_aom_decode(const uint8_t *data, size_t len, imgate_aom_plane_sink sink, void *sink_ctx,
                      char *err, size_t err_len) {
    aom_codec_ctx_t codec;
    aom_codec_err_t res = aom_codec_dec_init(&codec, aom_codec_av1_dx(), NULL, 0);
    if (res != AOM_CODEC_OK) {
        snprintf(err, err_len, "init: %s", aom_codec_err_to_string(res));
        return (int)res;
    }
    res = aom_codec_decode(&codec, data, len, NULL);
    if (res != AOM_CODEC_OK) {
        snprintf(err, err_len, "decode: %s", aom_codec_err_to_string(res));
        aom_codec_destroy(&codec);
        return (int)res;
    }
    aom_codec_iter_t iter = NULL;
    aom_image_t *img = aom_codec_get_frame(&codec, &iter);
    if (img == NULL || (img->fmt & AOM_IMG_FMT_HIGHBITDEPTH)) {
        snprintf(err, err_len, img ? "not 8-bit" : "no frame");
        aom_codec_destroy(&codec);
        return -1;
    }
    int planes = img->monochrome ? 1 : 3;
    for (int p = 0; p < planes; p++) {
        unsigned w = p ? (img->d_w + img->x_chroma_shift) >> img->x_chroma_shift : img->d_w;
        unsigned h = p ? (img->d_h + img->y_chroma_shift) >> img->y_chroma_shift : img->d_h;
        sink(sink_ctx, p, img->planes[p], img->stride[p], w, h);
    }
    aom_codec_destroy(&codec);
    return 0;
}
