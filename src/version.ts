/** The blip-graph version; recorded in compiled manifests and checked by `blip run`. */
export const VERSION = '0.1.0';
