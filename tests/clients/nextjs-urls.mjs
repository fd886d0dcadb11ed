// Prints what next/image's getImageProps (the `next` package's own loader) writes for each
// image, under the `images` config given: argv[2] is JSON {config, images: [props...]}; the
// output a JSON array of {src, srcSet}, one per image. Used by tests/it/dialects.rs.
const { config, images } = JSON.parse(process.argv[2]);
// A Next.js build inlines its `images` config where the loader reads
// `process.env.__NEXT_IMAGE_OPTS`, as an object (defaults filled in), which a real environment
// variable cannot hold: a plain object stands in for process.env.
const { imageConfigDefault } = (await import("next/dist/shared/lib/image-config.js")).default;
process.env = { ...process.env, __NEXT_IMAGE_OPTS: { ...imageConfigDefault, ...config } };
const { default: imageModule } = await import("next/image.js");
const out = images.map((image) => {
  const { props } = imageModule.getImageProps({ alt: "", ...image });
  return { src: props.src, srcSet: props.srcSet ?? null };
});
process.stdout.write(JSON.stringify(out));
