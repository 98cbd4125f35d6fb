// Malformed programs, each with every diagnostic it must produce (code, position, message).
// One per syntax error and per check, plus unicode, control characters, bad UTF-8, CRLF, empty
// files and deep nesting; large and long inputs are in limits.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeKinds } from '../../../src/nodes/index.js';
import { BLIP2, check, edit, load, type Simple } from './harness.js';

const cases: Array<{ name: string; src: string; files?: Record<string, string>; expect: Simple[] }> = [
  // lexing
  {
    name: "empty file",
    src: '',
    expect: [
      { code: "BLIP1013", line: 1, column: 1, message: "no model declared: expected at least one 'model NAME { … }' declaration, found an empty file" },
    ],
  },
  {
    name: "only comments",
    src: '// nothing here\n/* still nothing */\n',
    expect: [
      { code: "BLIP1013", line: 3, column: 1, message: "no model declared: expected at least one 'model NAME { … }' declaration, found only comments" },
    ],
  },
  {
    name: "only imports",
    src: 'import "./base.blip"\n', files: { 'base.blip': BLIP2 },
    expect: [
      { code: "BLIP1013", line: 1, column: 1, message: "no model declared: expected at least one 'model NAME { … }' declaration, found only imports" },
    ],
  },
  {
    name: "non-ASCII letter in a name",
    src: edit('node vision:', 'node visión:'),
    expect: [
      { code: "BLIP1001", line: 4, column: 12, message: "unexpected character 'ó' (U+00F3) in the name 'visión': expected ASCII letters, digits and _ (other text goes in a \"string\")" },
    ],
  },
  {
    name: "emoji before an error counts as one column",
    src: 'model m { input 😀 }',
    expect: [
      { code: "BLIP1001", line: 1, column: 17, message: "unexpected character '😀' (U+1F600): expected a name, number, string, comment or one of { } ( ) [ ] : , @" },
      { code: "BLIP1010", line: 1, column: 19, message: "expected a name, found '}'" },
    ],
  },
  {
    name: "non-breaking space",
    src: edit('input prompt: text', 'input\u00a0prompt: text'),
    expect: [
      { code: "BLIP1001", line: 3, column: 8, message: "unexpected whitespace character U+00A0: expected a name, number, string, comment or one of { } ( ) [ ] : , @" },
    ],
  },
  {
    name: "NUL byte",
    src: edit('frozen @', 'frozen\u0000@'),
    expect: [
      { code: "BLIP1001", line: 4, column: 33, message: "unexpected control character U+0000: expected a name, number, string, comment or one of { } ( ) [ ] : , @" },
    ],
  },
  {
    name: "invalid UTF-8 (decoded as U+FFFD)",
    src: edit('@ "qformer"', '@ \ufffd"qformer"'),
    expect: [
      { code: "BLIP1001", line: 5, column: 35, message: "unexpected bytes that are not UTF-8 (decoded as U+FFFD): expected a name, number, string, comment or one of { } ( ) [ ] : , @" },
    ],
  },
  {
    name: "unterminated string",
    src: edit('@ "qformer"', '@ "qformer'),
    expect: [
      { code: "BLIP1002", line: 5, column: 35, message: "unterminated string: expected a closing '\"' before the end of the line" },
    ],
  },
  {
    name: "unterminated block comment",
    src: BLIP2 + '/* trailing\n',
    expect: [
      { code: "BLIP1003", line: 10, column: 1, message: "unterminated comment: expected '*/' before the end of the file" },
    ],
  },
  {
    name: "invalid escape",
    src: edit('@ "qformer"', '@ "q\\former"'),
    expect: [
      { code: "BLIP1004", line: 5, column: 37, message: "invalid escape '\\f' in a string: expected one of \\\" \\\\ \\/ \\n \\r \\t \\uXXXX" },
    ],
  },
  {
    name: "integer out of range",
    src: edit('@ "qformer"', '@ "qformer" { width: 123456789012345678901234567890 }'),
    expect: [
      { code: "BLIP1005", line: 5, column: 54, message: "number 123456789012345678901234567890 is out of range: expected an integer of magnitude at most 2^53 - 1" },
    ],
  },
  {
    name: "float out of range",
    src: edit('@ "qformer"', '@ "qformer" { layer_norm_eps: 1e999 }'),
    expect: [
      { code: "BLIP1005", line: 5, column: 63, message: "number 1e999 is out of range: expected a finite number" },
    ],
  },
  {
    name: "number run into a name",
    src: edit('@ "qformer"', '@ "qformer" { depth: 12layers }'),
    expect: [
      { code: "BLIP1006", line: 5, column: 54, message: "malformed number '12layers': expected digits with an optional fraction and exponent, then a space or punctuation" },
    ],
  },
  {
    name: "a comma where a list item goes",
    src: edit('@ "qformer"', '@ "qformer" { mean: [0.5,, 0.5] }'),
    expect: [
      { code: "BLIP1010", line: 5, column: 58, message: "expected a value or ']', found ','" },
    ],
  },
  {
    name: "a string where a node input goes",
    src: edit('qformer(vision)', 'qformer("vision")'),
    expect: [
      { code: "BLIP1010", line: 5, column: 25, message: "expected an input name or ')', found '\"vision\"'" },
    ],
  },
  {
    name: "refining a node in a model without a base",
    src: edit('  output text', '  override node extra { width: 8 }\n  output text'),
    expect: [
      { code: "BLIP2006", line: 8, column: 17, message: "override of nothing inherited: expected 'extends BASE' on model 'm' for 'override node extra', found a model without a base" },
    ],
  },
  {
    name: "an exponent run into a fraction is one malformed number, its sign included",
    src: edit('@ "qformer"', '@ "qformer" { layer_norm_eps: 1e-5.0 }'),
    expect: [
      { code: "BLIP1006", line: 5, column: 63, message: "malformed number '1e-5.0': expected digits with an optional fraction and exponent, then a space or punctuation" },
    ],
  },
  // parsing
  {
    name: "missing closing parenthesis",
    src: edit('vit(image)', 'vit(image'),
    expect: [
      { code: "BLIP1010", line: 4, column: 26, message: "expected ',' or ')', found 'frozen'" },
    ],
  },
  {
    name: "missing colon in input",
    src: edit('input prompt: text', 'input prompt text'),
    expect: [
      { code: "BLIP1010", line: 3, column: 16, message: "expected ':', found 'text'" },
    ],
  },
  {
    name: "node without kind",
    src: edit('node qformer: qformer(vision)', 'node qformer qformer(vision)'),
    expect: [
      { code: "BLIP1011", line: 5, column: 16, message: "expected ':' and a node kind, or an attribute block '{', found 'qformer'" },
    ],
  },
  {
    name: "text between declarations",
    src: 'hello\n' + BLIP2,
    expect: [
      { code: "BLIP1012", line: 1, column: 1, message: "expected an 'import' or a 'model' declaration, found 'hello'" },
    ],
  },
  {
    name: "missing closing brace at end of file",
    src: BLIP2.trimEnd().slice(0, -1),
    expect: [
      { code: "BLIP1010", line: 8, column: 29, message: "expected a model member ('input', 'node', 'output', 'preprocess', 'generation') or '}', found end of file" },
    ],
  },
  {
    name: "missing attribute value",
    src: edit('@ "qformer"', '@ "qformer" { depth: }'),
    expect: [
      { code: "BLIP1011", line: 5, column: 54, message: "expected a value (number, string, true, false, name or [list]), found '}'" },
    ],
  },
  {
    name: "keyword used as a name",
    src: edit('node vision: vit(image)', 'node frozen: vit(image)'),
    expect: [
      { code: "BLIP1010", line: 4, column: 8, message: "expected a name, found 'frozen' ('frozen' is a reserved word: choose another name)" },
    ],
  },
  {
    name: "unknown member keyword",
    src: edit('  output text', '  outptu text'),
    expect: [
      { code: "BLIP1010", line: 8, column: 3, message: "expected a model member ('input', 'node', 'output', 'preprocess', 'generation') or '}', found 'outptu'; did you mean 'output'?" },
    ],
  },
  {
    name: "two syntax errors in one run",
    src: edit('input prompt: text', 'input prompt text', edit('vit(image)', 'vit(image')),
    expect: [
      { code: "BLIP1010", line: 3, column: 16, message: "expected ':', found 'text'" },
      { code: "BLIP1010", line: 4, column: 26, message: "expected ',' or ')', found 'frozen'" },
    ],
  },
  {
    name: "CRLF line ends",
    src: edit('vit(image)', 'vit(image').replace(/\n/g, '\r\n'),
    expect: [
      { code: "BLIP1010", line: 4, column: 26, message: "expected ',' or ')', found 'frozen'" },
    ],
  },
  {
    name: "list nested too deep",
    src: edit('@ "qformer"', '@ "qformer" { x: ' + '['.repeat(40) + ']'.repeat(40) + ' }'),
    expect: [
      { code: "BLIP1014", line: 5, column: 82, message: "list nested too deeply: expected at most 32 levels of '['" },
    ],
  },
  // names, extends, override
  {
    name: "duplicate model",
    src: BLIP2 + BLIP2,
    expect: [
      { code: "BLIP2002", line: 10, column: 7, message: "duplicate model 'm': expected each model name once across a file and its imports, found a second declaration" },
    ],
  },
  {
    name: "unknown base model",
    src: 'model d extends blip2 {}\n' + BLIP2,
    expect: [
      { code: "BLIP2003", line: 1, column: 17, message: "unknown base model 'blip2': expected one of m (declared here or in an imported file)" },
    ],
  },
  {
    name: "cyclic extends",
    src: 'model a extends b {}\nmodel b extends a {}\n',
    expect: [
      { code: "BLIP2004", line: 2, column: 17, message: "cyclic extends: expected a chain of base models that ends, found a extends b extends a" },
    ],
  },
  {
    name: "duplicate node",
    src: edit('  output', '  node llm: opt(prefix: projection) @ "language_model"\n  output'),
    expect: [
      { code: "BLIP2005", line: 8, column: 8, message: "duplicate name 'llm': expected each input and node name once in model 'm', found it declared again" },
    ],
  },
  {
    name: "node named like an input",
    src: edit('node vision:', 'node image:'),
    expect: [
      { code: "BLIP2005", line: 4, column: 8, message: "duplicate name 'image': expected each input and node name once in model 'm', found it declared again" },
      { code: "BLIP2020", line: 5, column: 25, message: "unknown node or input 'vision': expected one of image, prompt, qformer, projection, llm" },
    ],
  },
  {
    name: "output over a model without nodes",
    src: 'model m {\n  input image: image\n  output o: generate(x)\n}\n',
    expect: [
      { code: "BLIP2020", line: 3, column: 22, message: "unknown node 'x': the model declares no nodes" },
    ],
  },
  {
    name: "override without a base",
    src: edit('node llm:', 'override node llm:'),
    expect: [
      { code: "BLIP2006", line: 7, column: 17, message: "override of nothing inherited: expected 'extends BASE' on model 'm' for 'override node llm', found a model without a base" },
    ],
  },
  {
    name: "override of a node the base lacks",
    src: BLIP2 + 'model d extends m {\n  override node lm: t5(prefix: projection) @ "language_model"\n}\n',
    expect: [
      { code: "BLIP2006", line: 11, column: 17, message: "override of nothing inherited: expected node 'lm' to be declared by base model 'm', found no such node" },
    ],
  },
  {
    name: "redeclaration without override",
    src: BLIP2 + 'model d extends m {\n  node llm: t5(prefix: projection) @ "language_model"\n}\n',
    expect: [
      { code: "BLIP2007", line: 11, column: 8, message: "node 'llm' is inherited from 'm': expected 'override node llm' to replace it, found a plain redeclaration" },
    ],
  },
  {
    name: "refinement without override",
    src: BLIP2 + 'model d extends m {\n  node llm { width: 2560 }\n}\n',
    expect: [
      { code: "BLIP2006", line: 11, column: 8, message: "node 'llm' is inherited: expected 'override node llm { … }' to refine its attributes, found 'node llm { … }'" },
    ],
  },
  {
    name: "input redeclared with another type",
    src: BLIP2 + 'model d extends m {\n  input prompt: image\n}\n',
    expect: [
      { code: "BLIP2008", line: 11, column: 17, message: "input 'prompt' redeclared with another type: expected text as in model 'm', found image" },
    ],
  },
  {
    name: "duplicate block",
    src: edit('  output', '  generation { num_beams: 1 }\n  generation { num_beams: 2 }\n  output'),
    expect: [
      { code: "BLIP2009", line: 9, column: 3, message: "duplicate 'generation' block: expected at most one per model, found a second" },
    ],
  },
  {
    name: "import not found",
    src: 'import "./missing.blip"\n' + BLIP2,
    expect: [
      { code: "BLIP2001", line: 1, column: 8, message: "cannot read imported file 'missing.blip': expected a readable .blip file, found no such file" },
    ],
  },
  // kinds, inputs, tasks
  {
    name: "unknown node kind",
    src: edit('qformer(vision)', 'qformr(vision)'),
    expect: [
      { code: "BLIP2010", line: 5, column: 17, message: `unknown node kind 'qformr': expected one of ${Object.keys(nodeKinds).join(', ')}; did you mean 'qformer'?` },
    ],
  },
  {
    name: "unknown input type",
    src: edit('input prompt: text', 'input prompt: txt'),
    expect: [
      { code: "BLIP2011", line: 3, column: 17, message: "unknown input type 'txt': expected image or text; did you mean 'text'?" },
    ],
  },
  {
    name: "unknown task",
    src: edit('generate(llm)', 'generat(llm)'),
    expect: [
      { code: "BLIP2012", line: 8, column: 16, message: "unknown task 'generat': expected generate, itm or itc; did you mean 'generate'?" },
    ],
  },
  {
    name: "missing checkpoint prefix",
    src: edit(' @ "language_projection"', ''),
    expect: [
      { code: "BLIP2032", line: 6, column: 8, message: "node 'projection' reads no checkpoint: expected '@ \"prefix\"' after its inputs (e.g. @ \"vision_model\"), found none" },
    ],
  },
  {
    name: "bad checkpoint prefix",
    src: edit('@ "language_projection"', '@ "language projection"'),
    expect: [
      { code: "BLIP2032", line: 6, column: 38, message: "bad checkpoint prefix \"language projection\": expected dotted tensor-name parts such as \"language_model\" or \"text_decoder.bert\"" },
    ],
  },
  // edges
  {
    name: "unknown source",
    src: edit('linear(qformer)', 'linear(qformr)'),
    expect: [
      { code: "BLIP2020", line: 6, column: 27, message: "unknown node or input 'qformr': expected one of image, prompt, vision, qformer, projection, llm; did you mean 'qformer'?" },
    ],
  },
  {
    name: "unknown port",
    src: edit('text: prompt)', 'txt: prompt)'),
    expect: [
      { code: "BLIP2021", line: 7, column: 37, message: "opt has no port 'txt': expected 'prefix' or 'text'; did you mean 'text'?" },
    ],
  },
  {
    name: "port given twice",
    src: edit('text: prompt)', 'text: prompt, text: prompt)'),
    expect: [
      { code: "BLIP2022", line: 7, column: 51, message: "port 'text' given twice: expected one source per port, found a second" },
    ],
  },
  {
    name: "second positional input",
    src: edit('qformer(vision)', 'qformer(vision, prompt)'),
    expect: [
      { code: "BLIP2022", line: 5, column: 33, message: "qformer takes one positional input: expected the others named (text: …, instruction: …), found a second positional input 'prompt'" },
    ],
  },
  {
    name: "missing required input",
    src: edit('linear(qformer)', 'linear()'),
    expect: [
      { code: "BLIP2023", line: 6, column: 20, message: "linear 'projection' is missing a positional input (the features to project): expected linear(SOURCE…), found no such input" },
    ],
  },
  {
    name: "node without inputs",
    src: edit('opt(prefix: projection, text: prompt)', 'opt()'),
    expect: [
      { code: "BLIP2023", line: 7, column: 13, message: "opt 'llm' has no inputs: expected at least one of 'prefix: …', 'text: …'" },
      { code: "BLIP2028", line: 8, column: 25, message: "output 'text' is not reached from any input: expected a path from a model input to 'llm', found none" },
    ],
  },
  {
    name: "wrong type on an edge",
    src: edit('vit(image)', 'vit(prompt)'),
    expect: [
      { code: "BLIP2024", line: 4, column: 20, message: "the input of vit 'vision' expects image, found text from text input 'prompt'" },
    ],
  },
  {
    name: "features into a text port",
    src: edit('text: prompt)', 'text: qformer)'),
    expect: [
      { code: "BLIP2024", line: 7, column: 43, message: "port 'text' of opt 'llm' expects text, found features from qformer 'qformer'" },
    ],
  },
  {
    name: "cycle",
    src: edit('qformer(vision)', 'qformer(projection)'),
    expect: [
      { code: "BLIP2027", line: 6, column: 27, message: "cycle qformer → projection → qformer: expected every input of 'projection' to come from a model input or a node before it, found 'qformer' which depends on 'projection'" },
    ],
  },
  {
    name: "self loop",
    src: edit('linear(qformer)', 'linear(projection)'),
    expect: [
      { code: "BLIP2027", line: 6, column: 27, message: "cycle projection → projection: expected every input of 'projection' to come from a model input or a node before it, found 'projection' which depends on 'projection'" },
    ],
  },
  {
    // located at the name that closes the cycle, after the port, not at the port
    name: "cycle through a port",
    src: 'model c {\n  input image: image\n  input prompt: text\n  node vision: vit(image) @ "vision_model"\n  node decoder: bert(prompt, cross: decoder) @ "text_decoder" { causal: true }\n  output caption: generate(decoder)\n}\n',
    expect: [
      { code: "BLIP2027", line: 5, column: 37, message: "cycle decoder → decoder: expected every input of 'decoder' to come from a model input or a node before it, found 'decoder' which depends on 'decoder'" },
    ],
  },
  {
    name: "output not reached from any input",
    src: edit('opt(prefix: projection, text: prompt)', 'opt(prefix: projection)', edit('qformer(vision)', 'qformer(projection)')),
    expect: [
      { code: "BLIP2027", line: 6, column: 27, message: "cycle qformer → projection → qformer: expected every input of 'projection' to come from a model input or a node before it, found 'qformer' which depends on 'projection'" },
      { code: "BLIP2028", line: 8, column: 25, message: "output 'text' is not reached from any input: expected a path from a model input to 'llm', found none" },
    ],
  },
  {
    name: "model without outputs",
    src: edit('  output text: generate(llm)\n', ''),
    expect: [
      { code: "BLIP2029", line: 1, column: 7, message: "model 'm' has no outputs: expected at least one 'output NAME: generate(…) | itm(…) | itc(…, …)'" },
    ],
  },
  {
    name: "unused node (warning)",
    src: edit('  output', '  node extra: linear(qformer) @ "extra"\n  output'),
    expect: [
      { code: "BLIP2030", line: 8, column: 8, message: "unused node 'extra': expected it to feed an output, found no path from it to any" },
    ],
  },
  {
    name: "second generate output",
    src: edit('  output text: generate(llm)', '  output text: generate(llm)\n  output caption: generate(llm)'),
    expect: [
      { code: "BLIP2034", line: 9, column: 10, message: "output 'caption' is a second generate() output: expected one (a compiled model drives one decoder); compile each as its own model" },
    ],
  },
  {
    name: "second text input read",
    src: edit('qformer(vision)', 'qformer(vision, instruction: instruction)', edit('  input prompt: text', '  input prompt: text\n  input instruction: text')),
    expect: [
      { code: "BLIP2035", line: 4, column: 9, message: "'instruction' is a second text input read by model 'm': expected one text input, as a compiled model takes one text: the prompt, question or instruction; read 'prompt' where 'instruction' is read" },
    ],
  },
  {
    name: "unused input (warning)",
    src: edit(', text: prompt)', ')'),
    expect: [
      { code: "BLIP2031", line: 3, column: 9, message: "unused input 'prompt': expected some node to read it, found none on a path to an output" },
    ],
  },
  {
    name: "generate() of an encoder",
    src: edit('generate(llm)', 'generate(vision)'),
    expect: [
      { code: "BLIP2026", line: 8, column: 25, message: "generate() expects a text decoder (opt, llama, t5, or bert with causal: true), found vit 'vision'" },
    ],
  },
  {
    name: "generate() of an input",
    src: edit('generate(llm)', 'generate(prompt)'),
    expect: [
      { code: "BLIP2026", line: 8, column: 25, message: "generate() expects a text decoder (opt, llama, t5, or bert with causal: true), found text input 'prompt'" },
    ],
  },
  {
    name: "itc() with one argument",
    src: edit('generate(llm)', 'itc(llm)'),
    expect: [
      { code: "BLIP2025", line: 8, column: 16, message: "itc() takes 2 arguments (itc(image_embed, text_embed)), found 1" },
    ],
  },
  {
    name: "itc() arguments swapped",
    src: 'model r {\n  input image: image\n  input text: text\n  node vision: vit(image) @ "vision_model"\n  node unimodal: bert(text) @ "text_encoder"\n  node image_proj: embed(vision) @ "vision_proj"\n  node text_proj: embed(unimodal) @ "text_proj"\n  output itc: itc(text_proj, image_proj)\n}\n',
    expect: [
      { code: "BLIP2036", line: 8, column: 15, message: "itc() takes the image embedding first and the text embedding second (itc(image_embed, text_embed)): found 'text_proj' (from text input 'text') first and 'image_proj' (from image input 'image') second; write itc(image_proj, text_proj)" },
    ],
  },
  {
    name: "mean over the queries of a BERT's tokens",
    src: 'model r {\n  input image: image\n  input text: text\n  node vision: vit(image) @ "vision_model"\n  node fused: bert(text, cross: vision) @ "text_encoder"\n  node itm_head: classifier(fused) @ "itm_head" { pool: mean_queries }\n  output itm: itm(itm_head)\n}\n',
    expect: [
      { code: "BLIP2037", line: 6, column: 57, message: "classifier 'itm_head' pools mean_queries over 'fused': expected the query outputs of a qformer that reads image features, found bert 'fused', whose positions are not a Q-Former's query outputs; use pool: cls" },
    ],
  },
  {
    name: "generate() of an unknown node",
    src: edit('generate(llm)', 'generate(lm)'),
    expect: [
      { code: "BLIP2020", line: 8, column: 25, message: "unknown node 'lm': expected one of vision, qformer, projection, llm; did you mean 'llm'?" },
    ],
  },
  {
    name: "instruction attribute without the input",
    src: edit('@ "qformer"', '@ "qformer" { instruction: true }'),
    expect: [
      { code: "BLIP2033", line: 5, column: 60, message: "qformer 'qformer' pins instruction: true: expected an 'instruction: SOURCE' input, found none" },
    ],
  },
  {
    name: "Q-Former text: port feeding generate()",
    src: edit('qformer(vision)', 'qformer(vision, text: prompt)'),
    expect: [
      { code: "BLIP2038", line: 5, column: 33, message: "qformer 'qformer' reads text: prompt and feeds generate() output 'text': expected 'instruction: prompt', the port a generating Q-Former reads text through (InstructBLIP), found text:, BLIP-2 retrieval's port for itm() and itc()" },
    ],
  },
  {
    name: "LLM that does not read the image",
    src: edit('opt(prefix: projection, text: prompt)', 'opt(text: prompt)'),
    expect: [
      { code: "BLIP2039", line: 7, column: 13, message: "opt 'llm' (generate() output 'text') does not depend on the image: expected image input 'image' to reach it through prefix: (blip-graph models are vision-language: the image enters as a prefix, encoder input or cross-attention), found it reads text input 'prompt' only" },
    ],
  },
  {
    name: "ITM head over a text encoder without the image",
    src: 'model m {\n  input image: image\n  input text: text\n  node v: vit(image) @ "vision_model"\n  node f: bert(text) @ "text_encoder"\n  node h: classifier(f) @ "itm_head"\n  output itm: itm(h)\n}\n',
    expect: [
      { code: "BLIP2042", line: 6, column: 11, message: "classifier 'h' (itm() output 'itm') does not depend on the image: expected image input 'image' and text input 'text' to reach it (itm() scores whether the text matches the image: a text encoder cross-attending to the image, or a Q-Former reading the text beside its queries), found it reads text input 'text' only" },
    ],
  },
  // attributes
  {
    name: "unknown attribute",
    src: edit('@ "qformer"', '@ "qformer" { widht: 768 }'),
    expect: [
      { code: "BLIP3001", line: 5, column: 47, message: "unknown attribute 'widht' for qformer 'qformer': expected one of queries, width, depth, heads, mlp_width, cross_attention_frequency, encoder_width, vocab_size, max_positions, layer_norm_eps, instruction, act, keep_float32, config; did you mean 'width'?" },
    ],
  },
  {
    name: "attribute of the wrong type",
    src: edit('@ "qformer"', '@ "qformer" { depth: "12" }'),
    expect: [
      { code: "BLIP3002", line: 5, column: 54, message: "attribute 'depth' of qformer 'qformer' expects an integer, found the string \"12\"" },
    ],
  },
  {
    name: "float for an integer",
    src: edit('@ "qformer"', '@ "qformer" { depth: 12.5 }'),
    expect: [
      { code: "BLIP3002", line: 5, column: 54, message: "attribute 'depth' of qformer 'qformer' expects an integer, found 12.5" },
    ],
  },
  {
    name: "attribute out of range",
    src: edit('@ "qformer"', '@ "qformer" { depth: 0 }'),
    expect: [
      { code: "BLIP3003", line: 5, column: 54, message: "attribute 'depth' of qformer 'qformer' expects a value >= 1, found 0" },
    ],
  },
  {
    name: "an epsilon of zero",
    src: edit('@ "qformer"', '@ "qformer" { layer_norm_eps: 0 }'),
    expect: [
      { code: "BLIP3003", line: 5, column: 63, message: "attribute 'layer_norm_eps' of qformer 'qformer' expects a value > 0, found 0" },
    ],
  },
  {
    name: "T5 with fewer than 4 relative position buckets (the encoder's two directions would keep no exact one): refused by blip check, not first at compile",
    src: edit('opt(prefix: projection, text: prompt) frozen @ "language_model"', 't5(prefix: projection, text: prompt) frozen @ "language_model" { relative_buckets: 2 }'),
    expect: [
      { code: "BLIP3003", line: 7, column: 96, message: "attribute 'relative_buckets' of t5 'llm' expects a value >= 4, found 2" },
    ],
  },
  {
    name: "attribute not in enum",
    src: edit('@ "qformer"', '@ "qformer" { act: gelu2 }'),
    expect: [
      { code: "BLIP3004", line: 5, column: 52, message: "attribute 'act' of qformer 'qformer' expects one of gelu, gelu_new, gelu_pytorch_tanh, quick_gelu, relu, silu, swish, tanh, found the name gelu2; did you mean 'gelu'?" },
    ],
  },
  {
    name: "attribute given twice",
    src: edit('@ "qformer"', '@ "qformer" { depth: 12, depth: 6 }'),
    expect: [
      { code: "BLIP3005", line: 5, column: 58, message: "attribute 'depth' given twice in node 'qformer': expected each key once, found a second value" },
    ],
  },
  {
    name: "config on a kind without one",
    src: edit('@ "language_projection"', '@ "language_projection" { config: "text_config" }'),
    expect: [
      { code: "BLIP3006", line: 6, column: 62, message: "linear 'projection' reads no config.json section: expected no 'config' attribute (its widths come from the checkpoint's tensor shapes), found config" },
    ],
  },
  {
    name: "config not a string",
    src: edit('@ "qformer"', '@ "qformer" { config: 3 }'),
    expect: [
      { code: "BLIP3006", line: 5, column: 55, message: "'config' of qformer 'qformer' expects the string name of a config.json section (e.g. \"vision_config\"), found 3" },
    ],
  },
  {
    name: "mean with two items",
    src: edit('  output', '  preprocess { mean: [0.5, 0.5] }\n  output'),
    expect: [
      { code: "BLIP3007", line: 8, column: 22, message: "attribute 'mean' of the preprocess block expects 3 items, found a list of 2 items" },
    ],
  },
  {
    name: "std item out of range",
    src: edit('  output', '  preprocess { std: [0.5, 0, 0.5] }\n  output'),
    expect: [
      { code: "BLIP3003", line: 8, column: 27, message: "item 2 of 'std' (the preprocess block) expects a value > 0, found 0" },
    ],
  },
  {
    name: "unknown generation key",
    src: edit('  output', '  generation { max_tokens: 20 }\n  output'),
    expect: [
      { code: "BLIP3001", line: 8, column: 16, message: "unknown attribute 'max_tokens' for the generation block: expected one of max_new_tokens, max_length, min_new_tokens, min_length, num_beams, length_penalty, early_stopping, repetition_penalty, no_repeat_ngram_size, do_sample, top_p, top_k, temperature, prompt" },
    ],
  },
  {
    name: "early_stopping neither a bool nor never",
    src: edit('  output', '  generation { early_stopping: nevr, num_beams: 3 }\n  output'),
    expect: [
      { code: "BLIP3004", line: 8, column: 32, message: "attribute 'early_stopping' of the generation block expects one of true, false, never, found the name nevr; did you mean 'never'?" },
    ],
  },
  {
    name: "early_stopping written True, as Python writes it",
    src: edit('  output', '  generation { early_stopping: True, num_beams: 3 }\n  output'),
    expect: [
      { code: "BLIP3004", line: 8, column: 32, message: "attribute 'early_stopping' of the generation block expects one of true, false, never, found the name True; did you mean 'true'?" },
    ],
  },
  {
    name: "early_stopping a number",
    src: edit('  output', '  generation { early_stopping: 1 }\n  output'),
    expect: [
      { code: "BLIP3004", line: 8, column: 32, message: "attribute 'early_stopping' of the generation block expects one of true, false, never, found 1" },
    ],
  },
  {
    name: "whole-sequence lengths out of range",
    src: edit('  output', '  generation { max_length: 0, min_length: -1 }\n  output'),
    expect: [
      { code: "BLIP3003", line: 8, column: 28, message: "attribute 'max_length' of the generation block expects a value >= 1, found 0" },
      { code: "BLIP3003", line: 8, column: 43, message: "attribute 'min_length' of the generation block expects a value >= 0, found -1" },
    ],
  },
  {
    name: "a length bounded both ways in one block: the new-token bound wins, the other is unused (a warning)",
    src: edit('  output', '  generation { max_length: 40, num_beams: 3, max_new_tokens: 10 }\n  output'),
    expect: [
      { code: "BLIP2043", line: 8, column: 16, message: "the generation block sets both max_length 40 and max_new_tokens 10: max_new_tokens wins, as in transformers, and max_length is not used; give one of them" },
    ],
  },
  {
    name: "a length bound the schema refuses is not also said to be unused",
    src: edit('  output', '  generation { min_length: -1, min_new_tokens: 2 }\n  output'),
    expect: [
      { code: "BLIP3003", line: 8, column: 28, message: "attribute 'min_length' of the generation block expects a value >= 0, found -1" },
    ],
  },
  // widths and sizes
  {
    name: "projection width differs from the Q-Former",
    src: edit('@ "qformer"', '@ "qformer" { width: 768 }', edit('@ "language_projection"', '@ "language_projection" { in_width: 1024 }')),
    expect: [
      { code: "BLIP2040", line: 6, column: 27, message: "width mismatch on qformer → projection: linear 'projection' expects its input to be 1024 wide, found 768 (the output width of qformer 'qformer')" },
    ],
  },
  {
    name: "LLM width differs from the projection",
    src: edit('@ "language_projection"', '@ "language_projection" { out_width: 2560 }', edit('frozen @ "language_model"', 'frozen @ "language_model" { width: 4096 }')),
    expect: [
      { code: "BLIP2040", line: 7, column: 17, message: "width mismatch on projection → llm: opt 'llm' expects its 'prefix' input to be 4096 wide, found 2560 (the output width of linear 'projection')" },
    ],
  },
  {
    name: "Q-Former encoder width differs from the vision width",
    src: edit('@ "qformer"', '@ "qformer" { encoder_width: 1408 }', edit('frozen @ "vision_model"', 'frozen @ "vision_model" { width: 1024 }')),
    expect: [
      { code: "BLIP2040", line: 5, column: 25, message: "width mismatch on vision → qformer: qformer 'qformer' expects its input to be 1408 wide, found 1024 (the output width of vit 'vision')" },
    ],
  },
  {
    name: "width not a multiple of heads",
    src: edit('frozen @ "vision_model"', 'frozen @ "vision_model" { width: 1000, heads: 16 }'),
    expect: [
      { code: "BLIP2041", line: 4, column: 73, message: "vit 'vision': width 1000 is not a multiple of heads 16: expected heads to divide width" },
    ],
  },
];

test('at least 40 malformed programs, covering every 1xxx-3xxx code but the internal one', async () => {
  const { CODES } = await import('../../../src/diagnostics/codes.js');
  assert.ok(cases.length >= 40);
  const seen = new Set(cases.flatMap((c) => c.expect.map((e) => e.code)));
  const missing = Object.keys(CODES).filter((c) => c < 'BLIP4' && !seen.has(c) && !['BLIP1015', 'BLIP3099'].includes(c));
  assert.deepEqual(missing, []);
});

for (const c of cases)
  test(`malformed: ${c.name}`, () => {
    assert.deepEqual(check(c.src, c.files), c.expect);
  });

test('a port given three times: each later one points at the first use, not the one before it', () => {
  const src = edit('text: prompt)', 'text: prompt, text: prompt, text: prompt)');
  const found = load({ 'main.blip': src }).diagnostics.map((d) => ({
    code: d.code,
    at: [d.loc.line, d.loc.column],
    related: d.related?.map((r) => ({ message: r.message, at: [r.loc.line, r.loc.column] })),
  }));
  const first = { message: 'first given here', at: [7, 37] };
  assert.deepEqual(found, [
    { code: 'BLIP2022', at: [7, 51], related: [first] },
    { code: 'BLIP2022', at: [7, 65], related: [first] },
  ]);
});

test('no follow-on errors from what recovery dropped: a keyword where a name goes, a broken import', () => {
  // 'input model' resynchronises at 'model' as a new declaration: model m keeps no output, which is not to be reported
  const kw = check(edit('input prompt: text', 'input model: text'));
  assert.deepEqual([...new Set(kw.map((d) => d.code))], ['BLIP1010']);
  assert.deepEqual(kw, [{ code: 'BLIP1010', line: 3, column: 9, message: "expected a name, found 'model' ('model' is a reserved word: choose another name)" }]);
  // a node named by a reserved word and used as an input: one error, at the declaration
  const used = check(edit('node vision: vit(image)', 'node output: vit(image)').replace('qformer(vision)', 'qformer(output)'));
  assert.deepEqual(check(edit('input prompt: text', 'input model: text').replace('text: prompt', 'text: model')), kw);
  assert.deepEqual(used, [{ code: 'BLIP1010', line: 4, column: 8, message: "expected a name, found 'output' ('output' is a reserved word: choose another name)" }]);
  // true / false stay values: another model's `causal: true` is not taken for a name
  const values = check(`model a {\n  input image: image\n  node true: vit(image) @ "v"\n  output o: generate(true)\n}\nmodel b {\n  input image: image\n  node v: vit(image) @ "vision_model"\n  node d: bert(cross: v) @ "text_decoder" { causal: true }\n  output o: generate(d)\n}\n`);
  assert.ok(values.every((d) => d.line <= 5), JSON.stringify(values));
  // a stray token after a model closed by its '}' is not that model's error: its own errors still show
  const stray = check(`model a {\n  input image: image\n}\n]\n`);
  assert.deepEqual(stray.map((d) => d.code), ['BLIP2029', 'BLIP1012']);
  // an unterminated import: the base model it would have brought is not 'unknown'
  const imp = check(`import "./base.blip\nmodel n extends m {\n  generation { max_new_tokens: 5 }\n}\n`, { 'base.blip': BLIP2 });
  assert.ok(imp.some((d) => d.code === 'BLIP1002'), JSON.stringify(imp));
  assert.deepEqual(imp.filter((d) => d.code === 'BLIP2003'), []);
});
