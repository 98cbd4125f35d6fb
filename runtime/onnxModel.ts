// Reading a graph file for the runtime's own rewrites of it (session.ts untieHead,
// generation/greedyLoop.ts): both work on a flat graph, one without subgraphs.
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** The model in `bytes` when it is one with a graph and no subgraphs; undefined otherwise (onnxruntime reports a file that is not a model). */
export function decodeFlatModel(bytes: Uint8Array): onnxProto.onnx.ModelProto | undefined {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch {
    return undefined;
  }
  const nodes = model.graph?.node;
  if (!model.graph || (nodes ?? []).some((n) => (n.attribute ?? []).some((a) => a.g || a.graphs?.length))) return undefined;
  return model;
}
