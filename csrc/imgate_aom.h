/* The C side of src/pipeline/avif.rs: plain structs and callbacks, mirrored there by hand. */
#ifndef IMGATE_AOM_H
#define IMGATE_AOM_H
#include <stddef.h>
#include <stdint.h>

/* Receives the encoded bitstream, possibly in pieces; returns 0, or non-zero to abort. */
typedef int (*imgate_aom_sink)(void *sink_ctx, const uint8_t *data, size_t len);
/* Receives one decoded plane (0 = Y). */
typedef void (*imgate_aom_plane_sink)(void *sink_ctx, int plane, const uint8_t *data, int stride,
                                      unsigned width, unsigned height);

struct imgate_aom_picture {
    const uint8_t *planes[3]; /* Y, U, V, 8 bits each; U and V unused when monochrome */
    int strides[3];
    unsigned width, height;
    int monochrome;           /* 1: one plane (an alpha channel) */
    int chroma_444;           /* 1: 4:4:4, 0: 4:2:0; ignored when monochrome */
    int matrix;               /* CICP matrix coefficients of Y, U, V (6 = BT.601) */
};

struct imgate_aom_settings {
    int cq_level;             /* 0 (best) ..= 63 */
    int cpu_used;             /* 0 (slowest) ..= 9 */
    int tune_ssim;            /* 1: tune for SSIM, 0: for PSNR */
};

int imgate_aom_encode(const struct imgate_aom_picture *pic, const struct imgate_aom_settings *set,
                      imgate_aom_sink sink, void *sink_ctx, char *err, size_t err_len);
int imgate_aom_decode(const uint8_t *data, size_t len, imgate_aom_plane_sink sink, void *sink_ctx,
                      char *err, size_t err_len);
#endif
