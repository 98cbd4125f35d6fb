// Drawing a model's composition for `blip graph`: describe (what to show), layout (where), and the
// SVG, Mermaid and DOT writers.
export { describeModel, type DrawGraph, type DrawVertex, type DrawEdge } from './describe.js';
export { layout, textWidth, type Layout } from './layout.js';
export { toSvg } from './svg.js';
export { toMermaid } from './mermaid.js';
export { toDotGraph } from './dot.js';
