/**
 * BPF_PROG_TEST_RUN for the program types that take a packet (cgroup_skb,
 * tc, ...): the kernel builds an skb from `frame` and runs the program once
 * on it, in the caller's network namespace, with no context given.
 *
 * `frame` starts with an Ethernet header: the kernel reads the EtherType
 * from it (skb->protocol) and pulls it, so a cgroup_skb program sees the
 * packet from its IP header on, as at its hook. The skb belongs to a dummy
 * socket the kernel makes for each run: its cgroup is the calling thread's,
 * its cookie is new each run, and it is neither a TCP nor a UDP socket.
 */
import { bpf, koffi, testRunOpts } from './libbpf.js';
import { KernelError } from './errors.js';

export interface TestRunResult {
  /** What the program returned (cgroup_skb: 1 pass, 0 drop). */
  retval: number;
  /** The packet after the run, as the kernel hands it back. */
  frame: Buffer;
}

/** Room for what a program may add to the packet on top of its length. */
const HEADROOM_OUT = 256;

export function testRunPacket(progFd: number, frame: Buffer): TestRunResult {
  const out = Buffer.alloc(frame.length + HEADROOM_OUT);
  const opts = {
    sz: koffi.sizeof(testRunOpts),
    data_in: frame, data_out: out, data_size_in: frame.length, data_size_out: out.length,
    ctx_in: null, ctx_out: null, ctx_size_in: 0, ctx_size_out: 0,
    retval: 0, repeat: 1, duration: 0, flags: 0, cpu: 0, batch_size: 0,
  };
  const rc = bpf.bpf_prog_test_run_opts(progFd, opts) as number;
  if (rc < 0) {
    throw new KernelError(`test run of program fd ${progFd} on a ${frame.length}-byte frame`, -rc, {
      hint: 'the frame must start with a 14-byte Ethernet header and fit in a page',
    });
  }
  return { retval: opts.retval, frame: out.subarray(0, opts.data_size_out) };
}
