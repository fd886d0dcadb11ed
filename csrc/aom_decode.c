/* AV1 still picture to a decoded frame with libaom's decoder (AVIF input, and the tests that
 * read back what the encoder wrote). The frame is handed to a sink while the decoder still
 * owns it, so nothing is copied here. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <aom/aom_decoder.h>
#include <aom/aomdx.h>

#include "imgate_aom.h"

/* A decoder kept per thread between pictures. Setting one up zeroes context buffers sized by
 * the picture (tens of MB for a few megapixels): a third of an AVIF thumbnail's CPU, page
 * faults included. Only streams the caller found self-contained (every frame a shown key
 * frame, so none can read what an earlier picture left in the decoder) use it. */
static _Thread_local aom_codec_ctx_t kept;
static _Thread_local int kept_live;

void imgate_aom_drop_kept(void) {
    if (kept_live) {
        aom_codec_destroy(&kept);
        kept_live = 0;
    }
}

int imgate_aom_kept_live(void) { return kept_live; }

/* Ends a decode: a fresh decoder is destroyed, the kept one too after a failure or when it
 * grew past keep_max_pixels. */
static void finish(aom_codec_ctx_t *codec, int ok, uint64_t pixels, uint64_t keep_max_pixels) {
    if (codec != &kept) {
        aom_codec_destroy(codec);
    } else if (!ok || pixels > keep_max_pixels) {
        imgate_aom_drop_kept();
    }
}

int imgate_aom_decode(const uint8_t *data, size_t len, uint64_t max_pixels, int reuse,
                      uint64_t keep_max_pixels, imgate_aom_frame_sink sink, void *sink_ctx,
                      char *err, size_t err_len) {
    /* The sequence header's size comes first, so a hostile stream is refused before the
     * decoder allocates for it. */
    aom_codec_stream_info_t si;
    memset(&si, 0, sizeof si);
    aom_codec_err_t res = aom_codec_peek_stream_info(aom_codec_av1_dx(), data, len, &si);
    if (res != AOM_CODEC_OK || si.w == 0 || si.h == 0) {
        snprintf(err, err_len, "no sequence header (%s)", aom_codec_err_to_string(res));
        return res != AOM_CODEC_OK ? (int)res : -1;
    }
    uint64_t pixels = (uint64_t)si.w * si.h;
    if (pixels > max_pixels) {
        snprintf(err, err_len, "AV1 picture of %ux%u is over the pixel limit", si.w, si.h);
        return IMGATE_AOM_TOO_LARGE;
    }
    aom_codec_dec_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.threads = 1; /* one job per CPU-pool thread */
    cfg.allow_lowbitdepth = 1;
    aom_codec_ctx_t fresh;
    aom_codec_ctx_t *codec = reuse ? &kept : &fresh;
    if (codec != &kept || !kept_live) {
        res = aom_codec_dec_init(codec, aom_codec_av1_dx(), &cfg, 0);
        if (res != AOM_CODEC_OK) {
            snprintf(err, err_len, "init: %s", aom_codec_err_to_string(res));
            return (int)res;
        }
        kept_live |= codec == &kept;
    }
    res = aom_codec_decode(codec, data, len, NULL);
    if (res != AOM_CODEC_OK) {
        const char *detail = aom_codec_error_detail(codec);
        snprintf(err, err_len, "decode: %s%s%s", aom_codec_err_to_string(res),
                 detail ? ": " : "", detail ? detail : "");
        finish(codec, 0, pixels, keep_max_pixels);
        return (int)res;
    }
    aom_codec_iter_t iter = NULL;
    aom_image_t *img = aom_codec_get_frame(codec, &iter);
    if (img == NULL) {
        snprintf(err, err_len, "no frame");
        finish(codec, 0, pixels, keep_max_pixels);
        return -1;
    }
    struct imgate_aom_frame frame;
    memset(&frame, 0, sizeof frame);
    frame.monochrome = img->monochrome;
    for (int p = 0; p < (img->monochrome ? 1 : 3); p++) {
        frame.planes[p] = img->planes[p];
        frame.strides[p] = img->stride[p];
    }
    frame.width = img->d_w;
    frame.height = img->d_h;
    frame.bit_depth = (int)img->bit_depth;
    frame.wide = (img->fmt & AOM_IMG_FMT_HIGHBITDEPTH) ? 1 : 0;
    frame.x_shift = (int)img->x_chroma_shift;
    frame.y_shift = (int)img->y_chroma_shift;
    frame.matrix = (int)img->mc;
    frame.primaries = (int)img->cp;
    frame.transfer = (int)img->tc;
    frame.full_range = img->range == AOM_CR_FULL_RANGE;
    int rc = sink(sink_ctx, &frame);
    if (rc != 0) {
        snprintf(err, err_len, "the decoded picture was refused");
    }
    /* Nothing of this picture may be left to come out of the next decode. */
    while (aom_codec_get_frame(codec, &iter) != NULL) {
    }
    finish(codec, rc == 0, pixels, keep_max_pixels);
    return rc;
}
