// Prints the URLs @imgproxy/imgproxy-node builds for each request in the JSON array given as
// the first argument ({endpoint, url, options, key, salt} each, as generateImageUrl takes
// them), as a JSON array, one URL per request. Used by tests/it/dialects.rs.
import { generateImageUrl } from "@imgproxy/imgproxy-node";

const requests = JSON.parse(process.argv[2]);
process.stdout.write(JSON.stringify(requests.map((r) => generateImageUrl(r))));
