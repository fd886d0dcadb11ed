/* The C side of src/pipeline/avif.rs: plain structs and callbacks, mirrored there by hand. */
#ifndef IMGATE_AOM_H
#define IMGATE_AOM_H
#include <stddef.h>
#include <stdint.h>

/* Receives the encoded bitstream, possibly in pieces; returns 0, or non-zero to abort. */
typedef int (*imgate_aom_sink)(void *sink_ctx, const uint8_t *data, size_t len);
/* A decoded picture, valid only during the sink call that receives it. */
struct imgate_aom_frame {
    const uint8_t *planes[3]; /* Y, U, V; U and V NULL when monochrome */
    int strides[3];           /* in bytes */
    unsigned width, height;
    int bit_depth;            /* 8, 10 or 12 */
    int wide;                 /* 1: samples are uint16_t, 0: uint8_t */
    int monochrome;
    int x_shift, y_shift;     /* chroma subsampling: 1, 1 for 4:2:0 */
    int matrix, primaries, transfer; /* CICP code points from the sequence header */
    int full_range;
};
/* Receives the decoded picture; returns 0, or non-zero to report failure. */
typedef int (*imgate_aom_frame_sink)(void *sink_ctx, const struct imgate_aom_frame *frame);
/* imgate_aom_decode's result when the sequence header's size is over max_pixels. */
#define IMGATE_AOM_TOO_LARGE (-2)

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
/* Decodes one picture to sink. reuse: decode with this thread's kept decoder (made on first
 * use), for streams in which every frame is a shown key frame only; it stays kept unless the
 * decode fails or the picture is over keep_max_pixels. */
int imgate_aom_decode(const uint8_t *data, size_t len, uint64_t max_pixels, int reuse,
                      uint64_t keep_max_pixels, imgate_aom_frame_sink sink, void *sink_ctx,
                      char *err, size_t err_len);
/* Destroys this thread's kept decoder, if any, and so frees its memory. */
void imgate_aom_drop_kept(void);
/* 1 when this thread keeps a decoder (for tests). */
int imgate_aom_kept_live(void);
#endif
