/* HEIC/HEIF decoding through libheif (src/imaging/heic.rs). libheif parses the container,
 * decodes the HEVC tiles on the calling thread, applies the image's rotation, mirroring and
 * crop, and converts to 8-bit RGB(A); this file keeps its structs out of Rust. Only libheif's
 * HEVC decoder is ever used: AV1 pictures belong to imgate's own decoder (`imaging::avif`),
 * and libheif 1.15's dav1d plugin leaks the data it failed to send on bad input. */
#include "imgate_heif.h"

#include <libheif/heif.h>
#include <libheif/heif_plugin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct imgate_heif {
    struct heif_context *ctx;
    struct heif_image_handle *handle;
    heif_item_id exif_id; /* 0: none */
};

static int fail(struct heif_error e, char *err, size_t err_len) {
    snprintf(err, err_len, "%s", e.message ? e.message : "libheif error");
    switch (e.code) {
    case heif_error_Memory_allocation_error:
        return IMGATE_HEIF_TOO_LARGE;
    case heif_error_Unsupported_filetype:
    case heif_error_Unsupported_feature:
    case heif_error_Plugin_loading_error:
        return IMGATE_HEIF_UNSUPPORTED;
    case heif_error_Decoder_plugin_error:
        /* "no decoder for this compression" arrives as a plugin error with this subcode */
        return e.subcode == heif_suberror_Unsupported_codec ? IMGATE_HEIF_UNSUPPORTED
                                                            : IMGATE_HEIF_INVALID;
    default:
        return IMGATE_HEIF_INVALID;
    }
}

static int fail_msg(int code, const char *msg, char *err, size_t err_len) {
    snprintf(err, err_len, "%s", msg);
    return code;
}

/* heif_init loads libheif's decoder plugins once per process; it is reference counted and
 * never undone (the process keeps decoding until it exits). */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* A decoder plugin that claims every coding but HEVC, above any other plugin's priority, and
 * refuses each picture as an unsupported codec: with it registered, libheif decodes HEVC only
 * and its AV1 plugins (dav1d, aom) never run. (libheif 1.15 ignores the decoding options'
 * `decoder_id`, so naming the HEVC decoder there does not do it.) */
static const char *refuse_name(void) { return "imgate: HEVC only"; }
static int refuse_claims(enum heif_compression_format format) {
    return format == heif_compression_HEVC ? 0 : 1 << 20;
}
static struct heif_error refused(void) {
    struct heif_error e = {heif_error_Unsupported_feature, heif_suberror_Unsupported_codec,
                           "only HEVC pictures are decoded from HEIF"};
    return e;
}
static struct heif_error refuse_new(void **decoder) {
    *decoder = NULL;
    return refused();
}
static void refuse_free(void *decoder) { (void)decoder; }
static struct heif_error refuse_push(void *decoder, const void *data, size_t size) {
    (void)decoder, (void)data, (void)size;
    return refused();
}
static struct heif_error refuse_decode(void *decoder, struct heif_image **out) {
    (void)decoder;
    *out = NULL;
    return refused();
}
static void refuse_strict(void *decoder, int flag) { (void)decoder, (void)flag; }
static const struct heif_decoder_plugin hevc_only = {
    .plugin_api_version = 3,
    .get_plugin_name = refuse_name,
    .init_plugin = NULL,
    .deinit_plugin = NULL,
    .does_support_format = refuse_claims,
    .new_decoder = refuse_new,
    .free_decoder = refuse_free,
    .push_data = refuse_push,
    .decode_image = refuse_decode,
    .set_strict_decoding = refuse_strict,
    .id_name = "imgate-hevc-only",
};

/* Registration failing leaves libheif's own plugins in charge: then nothing is decoded. */
static int hevc_only_registered;
static void init(void) {
    heif_init(NULL);
    hevc_only_registered = heif_register_decoder_plugin(&hevc_only).code == heif_error_Ok;
}

void imgate_heif_close(struct imgate_heif *h) {
    if (!h)
        return;
    if (h->handle)
        heif_image_handle_release(h->handle);
    if (h->ctx)
        heif_context_free(h->ctx);
    free(h);
}

int imgate_heif_open(const uint8_t *data, size_t len, uint64_t max_pixels,
                     struct imgate_heif **out, struct imgate_heif_info *info,
                     char *err, size_t err_len) {
    pthread_once(&init_once, init);
    *out = NULL;
    if (!hevc_only_registered)
        return fail_msg(IMGATE_HEIF_UNSUPPORTED, "libheif refused imgate's HEVC-only guard",
                        err, err_len);
    memset(info, 0, sizeof *info);
    struct imgate_heif *h = calloc(1, sizeof *h);
    if (!h)
        return fail_msg(IMGATE_HEIF_TOO_LARGE, "out of memory", err, err_len);
    h->ctx = heif_context_alloc();
    if (!h->ctx) {
        imgate_heif_close(h);
        return fail_msg(IMGATE_HEIF_TOO_LARGE, "out of memory", err, err_len);
    }
    /* Tiles are decoded on the calling thread: the CPU pool already runs one job per core. */
    heif_context_set_max_decoding_threads(h->ctx, 0);
    struct heif_error e = heif_context_read_from_memory_without_copy(h->ctx, data, len, NULL);
    if (e.code == heif_error_Ok)
        e = heif_context_get_primary_image_handle(h->ctx, &h->handle);
    if (e.code != heif_error_Ok) {
        int rc = fail(e, err, err_len);
        imgate_heif_close(h);
        return rc;
    }
    int w = heif_image_handle_get_width(h->handle);
    int ht = heif_image_handle_get_height(h->handle);
    if (w <= 0 || ht <= 0) {
        imgate_heif_close(h);
        return fail_msg(IMGATE_HEIF_INVALID, "primary image has no size", err, err_len);
    }
    if ((uint64_t)w * (uint64_t)ht > max_pixels) {
        snprintf(err, err_len, "%dx%d is over the pixel limit", w, ht);
        imgate_heif_close(h);
        return IMGATE_HEIF_TOO_LARGE;
    }
    info->width = (unsigned)w;
    info->height = (unsigned)ht;
    info->alpha = heif_image_handle_has_alpha_channel(h->handle) != 0;
    info->premultiplied = info->alpha && heif_image_handle_is_premultiplied_alpha(h->handle) != 0;
    info->icc_len = heif_image_handle_get_raw_color_profile_size(h->handle);
    struct heif_color_profile_nclx *nclx = NULL;
    if (heif_image_handle_get_nclx_color_profile(h->handle, &nclx).code == heif_error_Ok && nclx) {
        info->has_nclx = 1;
        info->primaries = (int)nclx->color_primaries;
        info->transfer = (int)nclx->transfer_characteristics;
    }
    /* libheif allocates the profile before checking its values, and leaves it to us on an
     * error too (found by the heif fuzz target: 52 bytes a hostile file). */
    if (nclx)
        heif_nclx_color_profile_free(nclx);
    heif_item_id id = 0;
    if (heif_image_handle_get_list_of_metadata_block_IDs(h->handle, "Exif", &id, 1) == 1) {
        h->exif_id = id;
        info->exif_len = heif_image_handle_get_metadata_size(h->handle, id);
    }
    *out = h;
    return 0;
}

int imgate_heif_icc(const struct imgate_heif *h, uint8_t *out, char *err, size_t err_len) {
    struct heif_error e = heif_image_handle_get_raw_color_profile(h->handle, out);
    return e.code == heif_error_Ok ? 0 : fail(e, err, err_len);
}

int imgate_heif_exif(const struct imgate_heif *h, uint8_t *out, char *err, size_t err_len) {
    if (!h->exif_id)
        return fail_msg(IMGATE_HEIF_INVALID, "no Exif block", err, err_len);
    struct heif_error e = heif_image_handle_get_metadata(h->handle, h->exif_id, out);
    return e.code == heif_error_Ok ? 0 : fail(e, err, err_len);
}

int imgate_heif_decode(const struct imgate_heif *h, int channels, uint8_t *out, size_t out_len,
                       char *err, size_t err_len) {
    struct heif_decoding_options *opts = heif_decoding_options_alloc();
    if (!opts)
        return fail_msg(IMGATE_HEIF_TOO_LARGE, "out of memory", err, err_len);
    opts->ignore_transformations = 0;
    opts->convert_hdr_to_8bit = 1;
    struct heif_image *img = NULL;
    enum heif_chroma chroma =
        channels == 4 ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB;
    struct heif_error e = heif_decode_image(h->handle, &img, heif_colorspace_RGB, chroma, opts);
    heif_decoding_options_free(opts);
    if (e.code != heif_error_Ok) {
        if (img)
            heif_image_release(img);
        return fail(e, err, err_len);
    }
    int rc = 0;
    int w = heif_image_get_width(img, heif_channel_interleaved);
    int ht = heif_image_get_height(img, heif_channel_interleaved);
    int bits = heif_image_get_bits_per_pixel(img, heif_channel_interleaved);
    int stride = 0;
    const uint8_t *plane = heif_image_get_plane_readonly(img, heif_channel_interleaved, &stride);
    size_t row = (size_t)(w > 0 ? w : 0) * (size_t)channels;
    if (!plane || w <= 0 || ht <= 0 || bits != 8 * channels || stride < 0 ||
        (size_t)stride < row || row * (size_t)ht != out_len) {
        snprintf(err, err_len, "decoded picture is %dx%d at %d bits a pixel, expected %zu bytes",
                 w, ht, bits, out_len);
        rc = IMGATE_HEIF_INVALID;
    } else {
        for (int y = 0; y < ht; y++)
            memcpy(out + (size_t)y * row, plane + (size_t)y * (size_t)stride, row);
    }
    heif_image_release(img);
    return rc;
}
