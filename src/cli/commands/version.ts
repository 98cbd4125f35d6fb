import type { Command } from '../Command.js';
import { VERSION } from '../../version.js';

const command: Command = {
  name: 'version',
  summary: 'print the blip-graph version',
  help: 'Usage: blip version\n\nPrints the blip-graph version.\n\nExample:\n  blip version',
  async run() {
    process.stdout.write(`blip-graph ${VERSION}\n`);
    return 0;
  },
};
export default command;
