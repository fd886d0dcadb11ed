/* The C side of src/imaging/heic.rs: libheif's context and primary image behind one opaque
 * handle, and plain structs mirrored there by hand. */
#ifndef IMGATE_HEIF_H
#define IMGATE_HEIF_H
#include <stddef.h>
#include <stdint.h>

/* Results: 0 on success, else one of these (the message is in `err`). */
#define IMGATE_HEIF_INVALID (-1)     /* corrupt or truncated */
#define IMGATE_HEIF_UNSUPPORTED (-2) /* a codec or feature libheif lacks */
#define IMGATE_HEIF_TOO_LARGE (-3)   /* over the pixel limit, or out of memory */

struct imgate_heif;

/* What the primary image's header says, before any pixel is decoded. */
struct imgate_heif_info {
    unsigned width, height; /* as displayed: irot, imir and clap applied */
    int alpha;              /* 1: has an alpha channel */
    int premultiplied;      /* 1: its colour is premultiplied by that alpha */
    size_t icc_len;         /* bytes of its ICC profile; 0 when it has none */
    int has_nclx;           /* 1: colours described by code points (primaries, transfer) */
    int primaries, transfer;
    size_t exif_len;        /* bytes of its first Exif block (with libheif's 4-byte offset) */
};

/* Parses `data` (which must outlive the handle) and opens its primary image. Refuses an image
 * over `max_pixels`. */
int imgate_heif_open(const uint8_t *data, size_t len, uint64_t max_pixels,
                     struct imgate_heif **out, struct imgate_heif_info *info,
                     char *err, size_t err_len);
/* Copies the ICC profile (info.icc_len bytes) into `out`. */
int imgate_heif_icc(const struct imgate_heif *h, uint8_t *out, char *err, size_t err_len);
/* Copies the first Exif block (info.exif_len bytes) into `out`. */
int imgate_heif_exif(const struct imgate_heif *h, uint8_t *out, char *err, size_t err_len);
/* Decodes the primary image, transformations applied, to 8-bit interleaved RGB (channels 3)
 * or RGBA (4), rows packed into `out` (width * height * channels bytes). */
int imgate_heif_decode(const struct imgate_heif *h, int channels, uint8_t *out, size_t out_len,
                       char *err, size_t err_len);
void imgate_heif_close(struct imgate_heif *h);

#endif
