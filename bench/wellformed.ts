/**
 * Checks used by tests on what the report writer produces.
 *
 * A small well-formedness check for the SVG we write (balanced tags, escaped
 * text and attributes). Not a parser: enough to catch a broken writer in tests
 * without pulling in an XML library.
 */
export function checkWellFormedXml(text: string): string | null {
  const body = text.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/g;
  let pos = 0;
  let roots = 0;
  for (let m = tag.exec(body); m; m = tag.exec(body)) {
    const between = body.slice(pos, m.index);
    if (/[<>]/.test(between)) return `stray angle bracket before offset ${m.index}`;
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(between)) return `unescaped & before offset ${m.index}`;
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(m[3] ?? '')) return `unescaped & in attribute at ${m.index}`;
    pos = m.index + m[0].length;
    const [, close, name, , self] = m;
    if (close) {
      if (stack.pop() !== name) return `unbalanced </${name}> at ${m.index}`;
    } else if (!self) {
      if (stack.length === 0) roots++;
      stack.push(name!);
    } else if (stack.length === 0) {
      roots++;
    }
  }
  if (body.slice(pos).trim() !== '') return 'text after the root element';
  if (stack.length) return `unclosed <${stack.join('>, <')}>`;
  if (roots !== 1) return `expected one root element, found ${roots}`;
  return null;
}

/** Every Markdown table row has as many cells as its header (escaped pipes do not count). */
export function checkMarkdownTables(md: string): string | null {
  let width = 0;
  let inCode = false;
  for (const line of md.split('\n')) {
    if (line.startsWith('```')) inCode = !inCode;
    if (inCode || !line.startsWith('|')) {
      width = 0;
      continue;
    }
    const cells = line.replace(/\\\|/g, '').split('|').length;
    if (width === 0) width = cells;
    else if (cells !== width) return `table row has ${cells - 2} cells, header has ${width - 2}: ${line}`;
  }
  return inCode ? 'unclosed code block' : null;
}
