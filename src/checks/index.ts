// The checks, in the order they run (the order their diagnostics are listed when two share a
// position). Each is one invariant in its own file; see docs/diagnostics.md for every code.
import type { Diagnostic } from '../diagnostics/Diagnostic.js';
import type { DraftModel } from '../syntax/draft.js';
import { CheckContext, type CheckRule } from './CheckContext.js';
import { NodeKindRule } from './NodeKindRule.js';
import { InputTypeRule } from './InputTypeRule.js';
import { CheckpointPrefixRule } from './CheckpointPrefixRule.js';
import { NodeAttributesRule } from './NodeAttributesRule.js';
import { BlockAttributesRule } from './BlockAttributesRule.js';
import { LengthBoundedTwiceRule } from './LengthBoundedTwiceRule.js';
import { KnownSourcesRule } from './KnownSourcesRule.js';
import { KnownPortsRule } from './KnownPortsRule.js';
import { RequiredInputsRule } from './RequiredInputsRule.js';
import { EdgeTypesRule } from './EdgeTypesRule.js';
import { InstructionPortRule } from './InstructionPortRule.js';
import { QFormerTextPortRule } from './QFormerTextPortRule.js';
import { OutputTasksRule } from './OutputTasksRule.js';
import { HasOutputsRule } from './HasOutputsRule.js';
import { NoCyclesRule } from './NoCyclesRule.js';
import { ReachabilityRule } from './ReachabilityRule.js';
import { ItcSidesRule } from './ItcSidesRule.js';
import { QueryPoolingRule } from './QueryPoolingRule.js';
import { ImageReachesDecoderRule } from './ImageReachesDecoderRule.js';
import { ItmInputsRule } from './ItmInputsRule.js';
import { UnusedRule } from './UnusedRule.js';
import { ArtifactOutputsRule } from './ArtifactOutputsRule.js';
import { OneInputPerTypeRule } from './OneInputPerTypeRule.js';
import { NodeSizesRule } from './NodeSizesRule.js';
import { EdgeWidthsRule } from './EdgeWidthsRule.js';

export const checkRules: CheckRule[] = [
  // names and types of declarations
  NodeKindRule,
  InputTypeRule,
  CheckpointPrefixRule,
  NodeAttributesRule,
  BlockAttributesRule,
  LengthBoundedTwiceRule,
  // edges
  KnownSourcesRule,
  KnownPortsRule,
  RequiredInputsRule,
  EdgeTypesRule,
  InstructionPortRule,
  QFormerTextPortRule,
  // outputs and the graph as a whole
  OutputTasksRule,
  HasOutputsRule,
  ArtifactOutputsRule,
  OneInputPerTypeRule,
  NoCyclesRule,
  ReachabilityRule,
  ItcSidesRule,
  QueryPoolingRule,
  ImageReachesDecoderRule,
  ItmInputsRule,
  UnusedRule,
  // sizes
  NodeSizesRule,
  EdgeWidthsRule,
];

export function checkModel(model: DraftModel, rules: readonly CheckRule[] = checkRules): Diagnostic[] {
  const ctx = new CheckContext(model);
  for (const rule of rules) rule(ctx);
  return ctx.diagnostics;
}

export { CheckContext, type CheckRule } from './CheckContext.js';
export { checkWidths, type WidthNode } from './widths.js';
export { sizeProblems } from './NodeSizesRule.js';
