/* One still picture to an AV1 bitstream with libaom, all-intra usage.
 *
 * The Rust side (src/pipeline/avif.rs) owns the pixels and the AVIF container; this file
 * keeps libaom's structs and variadic controls on the C side, so no libaom struct layout is
 * mirrored in Rust and the headers of the installed libaom are the only source of truth.
 *
 * Returns 0 on success. On failure returns non-zero and writes a message into `err`. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <aom/aom_encoder.h>
#include <aom/aomcx.h>

#include "imgate_aom.h"

static int fail(aom_codec_ctx_t *codec, int initialised, aom_codec_err_t res, const char *what,
                char *err, size_t err_len) {
    if (err_len > 0) {
        const char *detail = initialised ? aom_codec_error_detail(codec) : NULL;
        snprintf(err, err_len, "%s: %s%s%s", what, aom_codec_err_to_string(res),
                 detail ? ": " : "", detail ? detail : "");
    }
    if (initialised) aom_codec_destroy(codec);
    return res == AOM_CODEC_OK ? -1 : (int)res;
}

#define CONTROL(id, value)                                                      \
    do {                                                                        \
        aom_codec_err_t r_ = aom_codec_control(&codec, id, value);              \
        if (r_ != AOM_CODEC_OK) return fail(&codec, 1, r_, #id, err, err_len);  \
    } while (0)

int imgate_aom_encode(const struct imgate_aom_picture *pic, const struct imgate_aom_settings *set,
                      imgate_aom_sink sink, void *sink_ctx, char *err, size_t err_len) {
    aom_codec_iface_t *iface = aom_codec_av1_cx();
    aom_codec_enc_cfg_t cfg;
    aom_codec_ctx_t codec;
    memset(&codec, 0, sizeof codec);
    aom_codec_err_t res = aom_codec_enc_config_default(iface, &cfg, AOM_USAGE_ALL_INTRA);
    if (res != AOM_CODEC_OK) return fail(&codec, 0, res, "config", err, err_len);
    int i444 = pic->chroma_444 && !pic->monochrome;
    cfg.g_w = pic->width;
    cfg.g_h = pic->height;
    cfg.g_threads = 1;        /* the CPU pool runs requests side by side, one core each */
    cfg.g_limit = 1;          /* one frame: a still picture */
    cfg.g_lag_in_frames = 0;
    cfg.g_bit_depth = AOM_BITS_8;
    cfg.g_input_bit_depth = 8;
    cfg.g_profile = i444 ? 1 : 0; /* 4:4:4 needs the High profile */
    cfg.monochrome = pic->monochrome ? 1 : 0;
    cfg.rc_end_usage = AOM_Q;
    cfg.rc_min_quantizer = 0;
    cfg.rc_max_quantizer = 63;
    res = aom_codec_enc_init(&codec, iface, &cfg, 0);
    if (res != AOM_CODEC_OK) return fail(&codec, 0, res, "init", err, err_len);
    CONTROL(AOME_SET_CPUUSED, set->cpu_used);
    CONTROL(AOME_SET_CQ_LEVEL, (unsigned)set->cq_level);
    CONTROL(AOME_SET_TUNING, set->tune_ssim ? AOM_TUNE_SSIM : AOM_TUNE_PSNR);
    CONTROL(AV1E_SET_COLOR_RANGE, AOM_CR_FULL_RANGE);
    CONTROL(AV1E_SET_COLOR_PRIMARIES, AOM_CICP_CP_BT_709);
    CONTROL(AV1E_SET_TRANSFER_CHARACTERISTICS, AOM_CICP_TC_SRGB);
    CONTROL(AV1E_SET_MATRIX_COEFFICIENTS,
            pic->monochrome ? AOM_CICP_MC_UNSPECIFIED : (aom_matrix_coefficients_t)pic->matrix);

    aom_image_t img;
    memset(&img, 0, sizeof img);
    /* Wrapping fills in the format fields; the planes are then pointed at the caller's own,
     * which need not be one contiguous buffer. A monochrome picture repeats its one plane:
     * libaom never reads chroma then, but the pointers must be valid. */
    if (!aom_img_wrap(&img, i444 ? AOM_IMG_FMT_I444 : AOM_IMG_FMT_I420, pic->width, pic->height,
                      1, (unsigned char *)pic->planes[0]))
        return fail(&codec, 1, AOM_CODEC_INVALID_PARAM, "image", err, err_len);
    for (int p = 0; p < 3; p++) {
        int src = pic->monochrome ? 0 : p;
        img.planes[p] = (unsigned char *)pic->planes[src];
        img.stride[p] = pic->strides[src];
    }
    img.range = AOM_CR_FULL_RANGE;
    img.monochrome = pic->monochrome ? 1 : 0;

    int frames = 0;
    for (int flushing = 0; flushing < 2; flushing++) {
        res = aom_codec_encode(&codec, flushing ? NULL : &img, 0, 1, 0);
        if (res != AOM_CODEC_OK) return fail(&codec, 1, res, "encode", err, err_len);
        aom_codec_iter_t iter = NULL;
        const aom_codec_cx_pkt_t *pkt;
        while ((pkt = aom_codec_get_cx_data(&codec, &iter)) != NULL) {
            if (pkt->kind != AOM_CODEC_CX_FRAME_PKT) continue;
            if (sink(sink_ctx, (const uint8_t *)pkt->data.frame.buf, pkt->data.frame.sz) != 0)
                return fail(&codec, 1, AOM_CODEC_MEM_ERROR, "output", err, err_len);
            frames++;
        }
    }
    aom_codec_destroy(&codec);
    if (frames != 1) {
        if (err_len > 0) snprintf(err, err_len, "libaom produced %d frames, not 1", frames);
        return -1;
    }
    return 0;
}
