/**
 * The libbpf (and the few libc) functions ebmesh calls, bound through koffi.
 *
 * This is the only file that knows C signatures. Everything else goes
 * through the typed wrappers in object.ts, map.ts, link.ts and btf.ts.
 * libbpf 1.x reports errors as negative errno returns, or NULL plus errno.
 */
import koffi from 'koffi';
import { MissingFeatureError } from './errors.js';

export type Pointer = unknown; // an opaque native pointer held by koffi

const lib = (() => {
  try {
    return koffi.load('libbpf.so.1');
  } catch (e) {
    throw new MissingFeatureError('libbpf (libbpf.so.1 not found)', 'install it: apt-get install libbpf1');
  }
})();
const libc = koffi.load('libc.so.6');

koffi.opaque('bpf_object');
koffi.opaque('bpf_program');
koffi.opaque('bpf_map');
koffi.opaque('btf');

export const btfTypeHeader = koffi.struct('btf_type', {
  name_off: 'uint32',
  info: 'uint32',
  size: 'uint32',
});
export const btfEnum = koffi.struct('btf_enum', { name_off: 'uint32', val: 'int32' });
export const btfMember = koffi.struct('btf_member', {
  name_off: 'uint32',
  type: 'uint32',
  offset: 'uint32',
});

/** struct bpf_test_run_opts from libbpf 1.1 (bpf.h). */
export const testRunOpts = koffi.struct('bpf_test_run_opts', {
  sz: 'size_t',
  data_in: 'void *',
  data_out: 'void *',
  data_size_in: 'uint32',
  data_size_out: 'uint32',
  ctx_in: 'void *',
  ctx_out: 'void *',
  ctx_size_in: 'uint32',
  ctx_size_out: 'uint32',
  retval: 'uint32',
  repeat: 'int',
  duration: 'uint32',
  flags: 'uint32',
  cpu: 'uint32',
  batch_size: 'uint32',
});

export const bpf = {
  libbpf_major_version: lib.func('uint32 libbpf_major_version()'),
  libbpf_minor_version: lib.func('uint32 libbpf_minor_version()'),
  libbpf_num_possible_cpus: lib.func('int libbpf_num_possible_cpus()'),
  libbpf_probe_bpf_prog_type: lib.func('int libbpf_probe_bpf_prog_type(int prog_type, void *opts)'),
  libbpf_probe_bpf_map_type: lib.func('int libbpf_probe_bpf_map_type(int map_type, void *opts)'),
  libbpf_probe_bpf_helper: lib.func('int libbpf_probe_bpf_helper(int prog_type, int helper_id, void *opts)'),

  bpf_object__open_file: lib.func('bpf_object *bpf_object__open_file(const char *path, void *opts)'),
  bpf_object__load: lib.func('int bpf_object__load(bpf_object *obj)'),
  bpf_object__close: lib.func('void bpf_object__close(bpf_object *obj)'),
  bpf_object__btf: lib.func('btf *bpf_object__btf(bpf_object *obj)'),
  bpf_object__next_program: lib.func('bpf_program *bpf_object__next_program(bpf_object *obj, bpf_program *prog)'),
  bpf_object__next_map: lib.func('bpf_map *bpf_object__next_map(bpf_object *obj, bpf_map *map)'),

  bpf_program__name: lib.func('const char *bpf_program__name(bpf_program *prog)'),
  bpf_program__section_name: lib.func('const char *bpf_program__section_name(bpf_program *prog)'),
  bpf_program__fd: lib.func('int bpf_program__fd(bpf_program *prog)'),
  bpf_program__type: lib.func('int bpf_program__type(bpf_program *prog)'),
  bpf_program__expected_attach_type: lib.func('int bpf_program__expected_attach_type(bpf_program *prog)'),
  bpf_program__set_log_buf: lib.func('int bpf_program__set_log_buf(bpf_program *prog, void *buf, size_t size)'),
  bpf_program__set_autoload: lib.func('int bpf_program__set_autoload(bpf_program *prog, bool autoload)'),

  bpf_map__name: lib.func('const char *bpf_map__name(bpf_map *map)'),
  bpf_map__fd: lib.func('int bpf_map__fd(bpf_map *map)'),
  bpf_map__type: lib.func('int bpf_map__type(bpf_map *map)'),
  bpf_map__key_size: lib.func('uint32 bpf_map__key_size(bpf_map *map)'),
  bpf_map__value_size: lib.func('uint32 bpf_map__value_size(bpf_map *map)'),
  bpf_map__max_entries: lib.func('uint32 bpf_map__max_entries(bpf_map *map)'),
  bpf_map__set_max_entries: lib.func('int bpf_map__set_max_entries(bpf_map *map, uint32 max)'),
  bpf_map__map_flags: lib.func('uint32 bpf_map__map_flags(bpf_map *map)'),
  bpf_map__set_map_flags: lib.func('int bpf_map__set_map_flags(bpf_map *map, uint32 flags)'),
  bpf_map__set_pin_path: lib.func('int bpf_map__set_pin_path(bpf_map *map, const char *path)'),
  bpf_map__initial_value: lib.func('void *bpf_map__initial_value(bpf_map *map, _Out_ size_t *psize)'),
  bpf_map__set_initial_value: lib.func('int bpf_map__set_initial_value(bpf_map *map, void *data, size_t size)'),

  bpf_map_update_elem: lib.func('int bpf_map_update_elem(int fd, void *key, void *value, uint64 flags)'),
  bpf_map_lookup_elem: lib.func('int bpf_map_lookup_elem(int fd, void *key, _Out_ void *value)'),
  bpf_map_delete_elem: lib.func('int bpf_map_delete_elem(int fd, void *key)'),
  bpf_map_get_next_key: lib.func('int bpf_map_get_next_key(int fd, void *key, _Out_ void *next)'),

  bpf_obj_get: lib.func('int bpf_obj_get(const char *path)'),
  bpf_obj_get_info_by_fd: lib.func('int bpf_obj_get_info_by_fd(int bpf_fd, void *info, _Inout_ uint32 *info_len)'),
  bpf_obj_pin: lib.func('int bpf_obj_pin(int fd, const char *path)'),
  bpf_link_create: lib.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, void *opts)'),
  bpf_link_update: lib.func('int bpf_link_update(int link_fd, int new_prog_fd, void *opts)'),
  bpf_link_detach: lib.func('int bpf_link_detach(int link_fd)'),
  bpf_prog_attach: lib.func('int bpf_prog_attach(int prog_fd, int target_fd, int type, uint32 flags)'),
  bpf_prog_detach2: lib.func('int bpf_prog_detach2(int prog_fd, int target_fd, int type)'),
  bpf_prog_test_run_opts: lib.func('int bpf_prog_test_run_opts(int prog_fd, _Inout_ bpf_test_run_opts *opts)'),

  btf__parse: lib.func('btf *btf__parse(const char *path, void *ext)'),
  btf__free: lib.func('void btf__free(btf *btf)'),
  btf__find_by_name_kind: lib.func('int btf__find_by_name_kind(btf *btf, const char *name, uint32 kind)'),
  btf__type_by_id: lib.func('void *btf__type_by_id(btf *btf, uint32 id)'),
  btf__name_by_offset: lib.func('const char *btf__name_by_offset(btf *btf, uint32 off)'),
  btf__resolve_size: lib.func('int64 btf__resolve_size(btf *btf, uint32 id)'),

  close: libc.func('int close(int fd)'),
  open: libc.func('int open(const char *path, int flags)'),
  mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64 off)'),
  munmap: libc.func('int munmap(void *addr, size_t len)'),
  sysconf: libc.func('long sysconf(int name)'),
};

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const SC_PAGESIZE = 30;
/** mmap's MAP_FAILED, (void *)-1, as koffi returns pointers. */
export const MAP_FAILED = 0xffffffffffffffffn;

export const O_RDONLY = 0;
export const O_DIRECTORY = 0o200000;
export const O_CLOEXEC = 0o2000000;

/** errno of the last native call on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}

export { koffi };
