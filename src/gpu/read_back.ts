/**
 * Read-back: copies of GPU bytes into host-mappable staging buffers, either waited for
 * ({@linkcode readNow}) or settled after the next submission ({@linkcode readAfterSubmit}), so that a
 * training loop reads step k's metrics while it records step k+1.
 *
 * @module
 */
import type { BufferView } from "./buffer_pool.ts";
import type { CommandStream } from "./command_stream.ts";

function staging(device: GPUDevice, size: number): GPUBuffer {
  return device.createBuffer({
    size: Math.max(4, size),
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    label: "read-back",
  });
}

async function mapCopy(buffer: GPUBuffer, byteLength: number): Promise<ArrayBuffer> {
  await buffer.mapAsync(GPUMapMode.READ);
  const copy = buffer.getMappedRange().slice(0, byteLength);
  buffer.unmap();
  buffer.destroy();
  return copy;
}

/**
 * Copies a view to the host in a submission of its own; submit earlier work first.
 *
 * @example Usage
 * ```ts
 * import { getGpu } from "@difflm/core/kernels";
 * import { readNow } from "./read_back.ts";
 * const { device } = await getGpu();
 * const buffer = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
 * device.queue.writeBuffer(buffer, 0, new Float32Array([1, 2, 3, 4]));
 * const bytes = await readNow(device, { buffer, byteOffset: 0, byteLength: 16 });
 * console.log(new Float32Array(bytes)); // Float32Array [1, 2, 3, 4]
 * ```
 * @param device The device.
 * @param source The bytes to read.
 * @returns A copy of the bytes.
 */
export function readNow(device: GPUDevice, source: BufferView): Promise<ArrayBuffer> {
  const size = Math.ceil(source.byteLength / 4) * 4;
  const buffer = staging(device, size);
  const encoder = device.createCommandEncoder({ label: "read-back" });
  encoder.copyBufferToBuffer(source.buffer, source.byteOffset, buffer, 0, size);
  device.queue.submit([encoder.finish()]);
  return mapCopy(buffer, source.byteLength);
}

/**
 * Records a copy of a view at this point of the stream and returns a promise of its bytes that settles
 * after the next submission, once the GPU has run that far.
 *
 * @example Usage
 * ```ts
 * import { getGpu } from "@difflm/core/kernels";
 * import { CommandStream } from "./command_stream.ts";
 * import { readAfterSubmit } from "./read_back.ts";
 * const gpu = await getGpu();
 * const buffer = gpu.device.createBuffer({ size: 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
 * gpu.device.queue.writeBuffer(buffer, 0, new Float32Array([7]));
 * const stream = new CommandStream(gpu);
 * const later = readAfterSubmit(gpu.device, stream, { buffer, byteOffset: 0, byteLength: 4 });
 * await stream.submit("metrics", () => {});
 * console.log(new Float32Array(await later)[0]); // 7
 * ```
 * @param device The device.
 * @param stream Where to record the copy.
 * @param source The bytes to read.
 * @returns The bytes, later.
 */
export function readAfterSubmit(
  device: GPUDevice,
  stream: CommandStream,
  source: BufferView,
): Promise<ArrayBuffer> {
  stream.endPass();
  const size = Math.max(4, Math.ceil(source.byteLength / 4) * 4);
  const buffer = staging(device, size);
  stream.encoder().copyBufferToBuffer(source.buffer, source.byteOffset, buffer, 0, size);
  stream.pending++;
  return new Promise((resolve, reject) => {
    stream.afterSubmit(() => mapCopy(buffer, source.byteLength).then(resolve, reject));
  });
}
