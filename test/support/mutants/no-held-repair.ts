// A mutant mesh node, kept in test code only: the digest exchange repairs only what a peer's digest shows missing, never entries held above it (the "held versions" repair of src/mesh/mesh-node.ts off). The convergence checkers must catch it.
import { MeshNode } from '../../../src/mesh/mesh-node.js';

export class NoHeldRepair extends MeshNode {
  protected override heldAbove(): boolean {
    return false;
  }
}
