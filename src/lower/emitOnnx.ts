// Serialise a GraphBuilder to an ONNX ModelProto whose checkpoint initializers point into the
// WeightStore's external-data file (written before this is called).
import onnxProto from 'onnx-proto';
import { GraphBuilder, ONNX_DTYPE } from './GraphBuilder.js';
import type { WeightStore } from './WeightStore.js';

const { onnx } = onnxProto;

/** ai.onnx opset the lowering targets (LayerNormalization needs 17; onnxruntime 1.30 accepts up to 26). */
export const OPSET = 17;
/** IR 8 is what onnx-proto's schema describes; onnxruntime 1.30 accepts it with any opset it knows. */
export const IR_VERSION = 8;

export interface EmitOptions {
  /** File name of the external data, relative to the .onnx file. */
  dataFile: string;
  producerVersion: string;
  docString?: string;
}

export function toModelProto(g: GraphBuilder, store: WeightStore, opts: EmitOptions): onnxProto.onnx.ModelProto {
  const initializers: onnxProto.onnx.ITensorProto[] = [...g.constants];
  for (const key of g.weightNames) {
    const w = store.location(key);
    initializers.push({
      name: key,
      dataType: ONNX_DTYPE[w.dataType],
      dims: w.spec.dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: opts.dataFile },
        { key: 'offset', value: String(w.offset) },
        { key: 'length', value: String(w.length) },
      ],
    });
  }
  const usesMs = g.nodes.some((n) => n.domain === 'com.microsoft');
  const opsetImport = [{ domain: '', version: OPSET }];
  if (usesMs) opsetImport.push({ domain: 'com.microsoft', version: 1 });
  return onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'blip-graph',
    producerVersion: opts.producerVersion,
    docString: opts.docString ?? '',
    opsetImport,
    graph: {
      name: g.name,
      node: g.nodes,
      input: g.inputs,
      output: g.outputs,
      initializer: initializers,
    },
  });
}

export function encodeModel(m: onnxProto.onnx.ModelProto): Uint8Array {
  return onnx.ModelProto.encode(m).finish();
}

export function decodeModel(bytes: Uint8Array): onnxProto.onnx.ModelProto {
  return onnx.ModelProto.decode(bytes);
}
