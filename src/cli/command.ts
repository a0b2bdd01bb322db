import type { InstancePaths } from '../paths.js';

export interface CommandContext {
  args: string[];
  paths: InstancePaths;
  out: (s: string) => void;
  err: (s: string) => void;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(ctx: CommandContext): Promise<number>;
}
