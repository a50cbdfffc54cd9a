/**
 * Reading a byte stream as text lines: the JSON event lines of the example nodes (for the demos
 * and the tests), the stdin of the test labs' children.
 *
 * @module
 */

/**
 * Yields each line of a stream, without its `\n`; a last line with no `\n` is not yielded.
 * Leaving the loop early cancels the stream.
 *
 * @param stream The bytes, UTF-8.
 * @returns The lines.
 */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
    }
  }
}
