using System.Security.Cryptography;
using Google.Protobuf;
using Quantize.Core.Quantization.Graph;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.TensorFlow;
using Quantize.Kernels.Quantization;

namespace Quantize.Core.Quantization.TensorFlow;

/// <summary>
/// Quantizes TensorFlow frozen GraphDefs the way graph_transforms does, byte-compatible with its output:
/// <list type="bullet">
/// <item><see cref="QuantizationMode.Weights"/> is <c>quantize_weights</c>: every float <c>Const</c> with at least
/// <see cref="QuantizationOptions.MinimumSize"/> elements becomes a quint8 Const <c>NAME_quantized_const</c>, float
/// scalar Consts <c>NAME_quantized_min</c> / <c>NAME_quantized_max</c> and a <c>Dequantize</c> (T=quint8,
/// mode=MIN_FIRST) named NAME, so its consumers are unchanged. With <see cref="QuantizationOptions.GraphDefPerChannel"/>,
/// weights of Conv2D, DepthwiseConv2dNative and MatMul get qint8 values and one range per output channel instead
/// (Dequantize mode=SCALED, narrow_range, axis), which TensorFlow 2 reads.</item>
/// <item><see cref="QuantizationMode.Round"/> is <c>round_weights</c>: the weights stay float, each snapped to the
/// centre of one of 256 buckets over its tensor's range, so the file compresses well.</item>
/// </list>
/// Every other node, and every other field of the graph (library, versions, unknown fields), is kept byte for byte.
/// </summary>
public static class GraphDefQuantizer
{
    /// <summary>round_weights' bucket count.</summary>
    public const int RoundSteps = 256;

    /// <summary>Quantizes a copy of <paramref name="source"/> (never changed).</summary>
    /// <exception cref="ArgumentException">Bad options, or a mode GraphDefs do not support.</exception>
    public static QuantizationResult Quantize(GraphDefModel source, QuantizationOptions options)
    {
        ArgumentNullException.ThrowIfNull(source);
        return Quantize(source.ToByteArray(), source.Source, options);
    }

    /// <summary>
    /// Quantizes a serialized GraphDef (the bytes of a <c>.pb</c> file). Nodes not replaced are copied as the
    /// original bytes. <paramref name="name"/> names the graph in errors.
    /// </summary>
    /// <exception cref="ArgumentException">Bad options, or a mode GraphDefs do not support.</exception>
    /// <exception cref="InvalidModelException">The bytes are not a valid GraphDef.</exception>
    public static QuantizationResult Quantize(ReadOnlyMemory<byte> graph, string name, QuantizationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        CheckMode(options.Mode, name);
        var model = GraphDefModel.Load(graph, name);
        var axes = options.GraphDefPerChannel && options.Mode == QuantizationMode.Weights ? ChannelAxes(model) : [];
        var readerOps = options.IncludeOpTypes.Count + options.ExcludeOpTypes.Count > 0 ? ReaderOps(model) : [];
        var include = options.IncludeNodes.Select(NodeSelection.Glob).ToArray();
        var exclude = options.ExcludeNodes.Select(NodeSelection.Glob).ToArray();
        var decisions = new List<NodeDecision>();

        byte[] bytes = GraphDefSplice.Rewrite(graph, name, node =>
        {
            if (GraphDefModel.ConstValue(node) is not { } tensor) return null;
            string? refusal = Refuse(node, tensor, options, include, exclude, readerOps.GetValueOrDefault(node.Name) ?? []);
            if (refusal is not null)
            {
                decisions.Add(new NodeDecision(node.Name, node.Op, false, refusal));
                return null;
            }
            var values = model.ReadTensor(tensor, node.Name).AsSpan<float>();
            var shape = tensor.TensorShape?.Dim.Select(d => d.Size).ToArray() ?? [];
            if (options.Mode == QuantizationMode.Round)
            {
                decisions.Add(new NodeDecision(node.Name, node.Op, true, $"round_weights: float, {RoundSteps} levels"));
                return [RoundedConst(node.Name, values, shape)];
            }
            if (axes.TryGetValue(node.Name, out int axis))
            {
                decisions.Add(new NodeDecision(node.Name, node.Op, true, $"qint8 per channel (axis {axis}), Dequantize SCALED"));
                return PerChannelNodes(node.Name, values, shape, axis);
            }
            decisions.Add(new NodeDecision(node.Name, node.Op, true, "quantize_weights: quint8, Dequantize MIN_FIRST"));
            return QuantizeWeightsNodes(node.Name, values, shape);
        });

        var output = GraphDefModel.Load(bytes, name);
        var notes = new List<string>();
        int quantizedOps = model.Proto.Node.Count(n => Inspection.QuantizationOps.IsTensorFlow(n.Op));
        if (quantizedOps > 0)
            notes.Add($"the source graph is already quantized ({quantizedOps} TensorFlow quantization ops, e.g. from quantize_graph or quantize_weights); only its remaining float constants were considered");
        return new QuantizationResult(output, decisions) { Notes = notes };
    }

    /// <summary>
    /// <see cref="Quantizer.QuantizeFile"/> for a GraphDef source: reads the file's bytes (so untouched nodes keep
    /// their exact encoding), quantizes, and writes <paramref name="outputPath"/> atomically.
    /// </summary>
    internal static QuantizationSummary QuantizeFile(string sourcePath, string outputPath, QuantizationOptions options, SampleSource? samples, System.Diagnostics.Stopwatch clock)
    {
        if (samples is not null)
            throw new ArgumentException($"{sourcePath}: TensorFlow GraphDefs are quantized without data (weights and round modes); leave out the calibration and evaluation samples.");
        byte[] bytes = File.ReadAllBytes(sourcePath);
        string sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        var result = Quantize(bytes, sourcePath, options) with { SourceSha256 = sha };
        string? folder = Path.GetDirectoryName(Path.GetFullPath(outputPath));
        if (folder is not null) Directory.CreateDirectory(folder);
        ((GraphDefModel)result.Output).Save(outputPath);
        return new QuantizationSummary(sourcePath, outputPath, options, result, bytes.LongLength, new FileInfo(outputPath).Length, clock.Elapsed.TotalSeconds);
    }

    /// <summary>The error for a mode GraphDefs cannot take (only <c>weights</c> and <c>round</c>).</summary>
    internal static void CheckMode(QuantizationMode mode, string name)
    {
        if (mode is not (QuantizationMode.Weights or QuantizationMode.Round))
            throw new ArgumentException($"{name}: {mode.ToString().ToLowerInvariant()} mode is not available for TensorFlow GraphDefs; use --mode weights (graph_transforms' quantize_weights) or --mode round (round_weights).");
    }

    /// <summary>Why a constant stays float, or null: not float; the name options; the op-type options, applied to the ops that read it; its size.</summary>
    private static string? Refuse(NodeDef node, TensorProto tensor, QuantizationOptions options, System.Text.RegularExpressions.Regex[] include,
        System.Text.RegularExpressions.Regex[] exclude, HashSet<string> readerOps)
    {
        bool isFloat = node.Attr.TryGetValue("dtype", out var dtype) && dtype.Type == DataType.DtFloat && tensor.Dtype == DataType.DtFloat;
        if (!isFloat) return "not a float constant";
        if (exclude.Any(r => r.IsMatch(node.Name))) return "excluded by name";
        if (include.Length > 0 && !include.Any(r => r.IsMatch(node.Name))) return "name not included";
        if (readerOps.Any(options.ExcludeOpTypes.Contains)) return "read by an excluded op type";
        if (options.IncludeOpTypes.Count > 0 && !readerOps.Any(options.IncludeOpTypes.Contains)) return "not read by an included op type";
        long count = 1;
        foreach (var d in tensor.TensorShape?.Dim ?? []) count *= Math.Max(d.Size, 0);
        if (count < options.MinimumSize) return $"fewer than {options.MinimumSize} elements";
        return null;
    }

    /// <summary>quantize_weights' four nodes for one constant, in its order.</summary>
    internal static NodeDef[] QuantizeWeightsNodes(string name, ReadOnlySpan<float> values, long[] shape)
    {
        var (min, max) = TensorFlowQuantization.WeightRange(values);
        var quantized = new byte[values.Length];
        TensorFlowQuantization.QuantizeMinFirst(values, min, max, quantized);
        return
        [
            Const(name + "_quantized_const", DataType.DtQuint8, shape, quantized),
            Const(name + "_quantized_min", DataType.DtFloat, [], BitConverter.GetBytes(min)),
            Const(name + "_quantized_max", DataType.DtFloat, [], BitConverter.GetBytes(max)),
            Dequantize(name, DataType.DtQuint8, "MIN_FIRST"),
        ];
    }

    /// <summary>The per-channel form: qint8 values, one symmetric range per slice along <paramref name="axis"/>.</summary>
    internal static NodeDef[] PerChannelNodes(string name, ReadOnlySpan<float> values, long[] shape, int axis)
    {
        int channels = (int)shape[axis];
        long inner = 1;
        for (int d = axis + 1; d < shape.Length; d++) inner *= shape[d];
        var maxima = new float[channels];
        for (int i = 0; i < values.Length; i++)
        {
            int c = (int)(i / inner % channels);
            maxima[c] = Math.Max(maxima[c], Math.Abs(values[i]));
        }
        var ranges = maxima.Select(m => m == 0 ? 1f : m).ToArray();
        var quantized = new byte[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            float scale = TensorFlowQuantization.ScaledStep(-ranges[i / inner % channels], ranges[i / inner % channels], narrowRange: true);
            quantized[i] = (byte)(sbyte)Math.Clamp(MathF.Round(values[i] / scale, MidpointRounding.AwayFromZero), -127, 127);
        }
        var minBytes = new byte[channels * 4];
        var maxBytes = new byte[channels * 4];
        for (int c = 0; c < channels; c++)
        {
            BitConverter.TryWriteBytes(minBytes.AsSpan(c * 4), -ranges[c]);
            BitConverter.TryWriteBytes(maxBytes.AsSpan(c * 4), ranges[c]);
        }
        var dequantize = Dequantize(name, DataType.DtQint8, "SCALED");
        dequantize.Attr["narrow_range"] = new AttrValue { B = true };
        dequantize.Attr["axis"] = new AttrValue { I = axis };
        return
        [
            Const(name + "_quantized_const", DataType.DtQint8, shape, quantized),
            Const(name + "_quantized_min", DataType.DtFloat, [channels], minBytes),
            Const(name + "_quantized_max", DataType.DtFloat, [channels], maxBytes),
            dequantize,
        ];
    }

    /// <summary>round_weights' replacement: a float Const of the same name with bucket-centre values.</summary>
    internal static NodeDef RoundedConst(string name, ReadOnlySpan<float> values, long[] shape)
    {
        float min = float.MaxValue, max = TensorFlowQuantization.SmallestNormal; // round_weights starts where quantize_weights does
        foreach (float v in values)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }
        if (min == max)
        {
            // round_weights' own degenerate-range rule (it differs from quantize_weights' for negative values).
            if (Math.Abs(min) < 0.000001f) max = min + 1f;
            else if (min > 0) max = 2f * min;
            else min = 2f * max;
        }
        var rounded = new float[values.Length];
        for (int i = 0; i < values.Length; i++) rounded[i] = TensorFlowQuantization.RoundToBucket(values[i], min, max, RoundSteps);
        var bytes = new byte[rounded.Length * 4];
        Buffer.BlockCopy(rounded, 0, bytes, 0, bytes.Length);
        return Const(name, DataType.DtFloat, shape, bytes);
    }

    /// <summary>A Const node as TensorFlow's SetNodeTensorAttr writes it: dtype then value, the data in tensor_content.</summary>
    private static NodeDef Const(string name, DataType type, long[] shape, byte[] content)
    {
        var tensorShape = new TensorShapeProto();
        foreach (long d in shape) tensorShape.Dim.Add(new TensorShapeProto.Types.Dim { Size = d });
        var node = new NodeDef { Name = name, Op = "Const" };
        node.Attr["dtype"] = new AttrValue { Type = type };
        node.Attr["value"] = new AttrValue
        {
            Tensor = new TensorProto { Dtype = type, TensorShape = tensorShape, TensorContent = UnsafeByteOperations.UnsafeWrap(content) },
        };
        return node;
    }

    private static NodeDef Dequantize(string name, DataType type, string mode)
    {
        var node = new NodeDef { Name = name, Op = "Dequantize" };
        node.Input.Add(name + "_quantized_const");
        node.Input.Add(name + "_quantized_min");
        node.Input.Add(name + "_quantized_max");
        node.Attr["T"] = new AttrValue { Type = type };
        node.Attr["mode"] = new AttrValue { S = ByteString.CopyFromUtf8(mode) };
        return node;
    }

    /// <summary>
    /// The output-channel axis of every constant that only feeds weight inputs (directly or through Identity) of
    /// Conv2D (HWIO: 3), DepthwiseConv2dNative (H, W, channel, multiplier: 2) or MatMul (1, or 0 with transpose_b),
    /// all agreeing.
    /// </summary>
    internal static Dictionary<string, int> ChannelAxes(GraphDefModel model)
    {
        var readers = Readers(model);

        int? AxisOf(string name, int depth)
        {
            if (!readers.TryGetValue(name, out var uses) || depth > 8) return null;
            int? axis = null;
            foreach (var (node, input) in uses)
            {
                int? use = node.Op switch
                {
                    "Identity" => AxisOf(node.Name, depth + 1),
                    "Conv2D" when input == 1 => 3,
                    "DepthwiseConv2dNative" when input == 1 => 2,
                    "MatMul" when input == 1 => node.Attr.TryGetValue("transpose_b", out var t) && t.B ? 0 : 1,
                    _ => null,
                };
                if (use is null || (axis is not null && axis != use)) return null;
                axis = use;
            }
            return axis;
        }

        var axes = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var node in model.Proto.Node)
        {
            if (GraphDefModel.ConstValue(node) is not { } tensor || tensor.Dtype != DataType.DtFloat) continue;
            int rank = tensor.TensorShape?.Dim.Count ?? 0;
            if (AxisOf(node.Name, 0) is int axis && axis < rank) axes[node.Name] = axis;
        }
        return axes;
    }

    /// <summary>Each value's readers (data inputs of output 0) with the input index.</summary>
    private static Dictionary<string, List<(NodeDef Node, int Input)>> Readers(GraphDefModel model)
    {
        var readers = new Dictionary<string, List<(NodeDef Node, int Input)>>(StringComparer.Ordinal);
        foreach (var node in model.Proto.Node)
        {
            for (int i = 0; i < node.Input.Count; i++)
            {
                var reference = GraphDefInput.Parse(node.Input[i]);
                if (reference.IsControl || reference.Output != 0) continue;
                if (!readers.TryGetValue(reference.Node, out var list)) readers[reference.Node] = list = [];
                list.Add((node, i));
            }
        }
        return readers;
    }

    /// <summary>The op types that read each node's output, looking through Identity (for the op-type options).</summary>
    internal static Dictionary<string, HashSet<string>> ReaderOps(GraphDefModel model)
    {
        var readers = Readers(model);
        var result = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        void Collect(string name, HashSet<string> ops, int depth)
        {
            if (depth > 8 || !readers.TryGetValue(name, out var uses)) return;
            foreach (var (node, _) in uses)
            {
                if (node.Op is "Identity" or "StopGradient") Collect(node.Name, ops, depth + 1);
                else ops.Add(node.Op);
            }
        }
        foreach (var node in model.Proto.Node.Where(n => n.Op == "Const"))
        {
            var ops = new HashSet<string>(StringComparer.Ordinal);
            Collect(node.Name, ops, 0);
            result[node.Name] = ops;
        }
        return result;
    }
}
