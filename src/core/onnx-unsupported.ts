/** A model the ONNX export cannot express (GET /v1/models/:id/onnx answers 422 ONNX_UNSUPPORTED). */
export class OnnxUnsupportedError extends Error {
  constructor(message: string) {
    super(`ONNX export: ${message}`);
    this.name = 'OnnxUnsupportedError';
  }
}
