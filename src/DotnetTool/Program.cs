using System.Text;
using Quantize.Tool;

// No byte-order mark: `--json` output must be exactly one JSON document.
Console.OutputEncoding = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
return QuantizeCli.Run(args, Console.Out, Console.Error);
