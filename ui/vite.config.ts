// The web UI bundle: plain Vite, Preact through Vite's own (oxc) automatic JSX
// runtime (no Babel plugin needed), everything local: no CDN, no web fonts.
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: './',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/ui', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 200,
  },
  server: {
    // `npm run ui:dev` next to `ebmesh ui`: the dev server asks the UI server for /api.
    proxy: { '/api': 'http://127.0.0.1:9900' },
  },
});
