using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Models.TensorFlow;
using TfNode = Quantize.Kernels.Models.TensorFlow.NodeDef;
using TfDataType = Quantize.Kernels.Models.TensorFlow.DataType;
using OnnxShape = Quantize.Kernels.Models.Onnx.TensorShapeProto;

namespace Quantize.Kernels.Runtime.TensorFlow;

/// <summary>
/// Translates the part of a TensorFlow GraphDef that computes the fetched tensors from the fed ones into an ONNX
/// graph the planner runs: standard ONNX operators where TensorFlow's op means the same (NHWC pools wrapped in
/// Transposes), and operators of the <see cref="Domain"/> domain for the rest (NHWC Conv2D, TensorFlow's legacy
/// quantized ops). Value names: output 0 of node N is <c>N</c>, output k is <c>N:k</c>.
/// </summary>
internal sealed partial class GraphDefTranslator
{
    /// <summary>The domain of the TensorFlow operators.</summary>
    public const string Domain = "quantize.tensorflow";

    private readonly GraphDefModel _model;
    private readonly Dictionary<string, TfNode> _nodes = new(StringComparer.Ordinal);
    private readonly HashSet<string> _feeds;
    private readonly OnnxGraphBuilder _b = new();
    private readonly SessionOptions _options;

    /// <summary>Per MatMul or Conv2D, the bias Add that the GEMM adds itself (constant [N] bias, the only reader, not fetched).</summary>
    private readonly Dictionary<string, (TfNode Add, string Bias)> _biases = new(StringComparer.Ordinal);

    /// <summary>Nodes folded into another's operator (bias Adds), not translated on their own.</summary>
    private readonly HashSet<string> _absorbed = new(StringComparer.Ordinal);

    private GraphDefTranslator(GraphDefModel model, IEnumerable<string> feeds, SessionOptions options)
    {
        _model = model;
        _options = options;
        foreach (var node in model.Proto.Node) _nodes[node.Name] = node;
        _feeds = feeds.ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>The canonical value name of a tensor reference: <c>x:0</c> and <c>x</c> are both <c>x</c>.</summary>
    public static string Canonical(string name)
    {
        var reference = GraphDefInput.Parse(name);
        return reference.Output == 0 ? reference.Node : $"{reference.Node}:{reference.Output}";
    }

    /// <summary>
    /// The sink tensors: output 0 of every node no other node reads, other than constants, placeholders and NoOps
    /// (as summarize_graph reports outputs); for a graph of constants only, its unread constants.
    /// </summary>
    public static List<string> DefaultOutputs(GraphDefModel model)
    {
        var read = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in model.Proto.Node)
            foreach (var input in node.Input) read.Add(GraphDefInput.Parse(input).Node);
        var sinks = model.Proto.Node.Where(n => !read.Contains(n.Name) && n.Op is not ("NoOp" or "Assert")).ToList();
        var computed = sinks.Where(n => n.Op is not ("Const" or "Placeholder")).Select(n => n.Name).ToList();
        // A graph of constants only (a test graph, a lookup table) outputs its constants.
        return computed.Count > 0 ? computed : sinks.Where(n => n.Op == "Const").Select(n => n.Name).ToList();
    }

    /// <summary>The placeholders, the default inputs.</summary>
    public static List<string> Placeholders(GraphDefModel model) =>
        model.Proto.Node.Where(n => n.Op is "Placeholder" or "PlaceholderWithDefault").Select(n => n.Name).ToList();

    /// <summary>The ONNX model computing <paramref name="fetches"/> from <paramref name="feeds"/> (canonical names).</summary>
    /// <exception cref="UnsupportedModelException">A needed node uses an op the runtime lacks.</exception>
    /// <param name="model">The graph.</param>
    /// <param name="feeds">The tensors given at run time.</param>
    /// <param name="fetches">The tensors wanted.</param>
    /// <param name="options">The session's options (integer kernels or not).</param>
    /// <param name="keepUnusedFeeds">Keep feeds that the fetches do not depend on as inputs (false drops them: unused placeholders need no value).</param>
    public static OnnxModel Translate(GraphDefModel model, IReadOnlyList<string> feeds, IReadOnlyList<string> fetches, SessionOptions options, bool keepUnusedFeeds)
    {
        var translator = new GraphDefTranslator(model, feeds, options);
        return translator.Build(fetches, keepUnusedFeeds);
    }

    private OnnxModel Build(IReadOnlyList<string> fetches, bool keepUnusedFeeds)
    {
        foreach (string fetch in fetches)
        {
            if (!_nodes.ContainsKey(GraphDefInput.Parse(fetch).Node))
                throw new ArgumentException($"{_model.Source}: the graph has no node '{GraphDefInput.Parse(fetch).Node}' (asked for '{fetch}').");
        }
        var needed = Needed(fetches);
        foreach (string feed in _feeds)
        {
            var info = new ValueInfoProto { Name = feed };
            if (_nodes.TryGetValue(feed, out var placeholder) && placeholder.Op is "Placeholder" or "PlaceholderWithDefault")
                info.Type = PlaceholderType(placeholder);
            _b.Graph.Input.Add(info);
        }
        FindBiases(needed, fetches);
        foreach (var node in _model.Proto.Node)
        {
            if (needed.Contains(node.Name) && !_absorbed.Contains(node.Name)) TranslateNode(node);
        }
        foreach (string fetch in fetches) _b.Graph.Output.Add(new ValueInfoProto { Name = fetch });
        if (!keepUnusedFeeds)
        {
            var read = _b.Graph.Node.SelectMany(n => n.Input).Concat(fetches).ToHashSet(StringComparer.Ordinal);
            foreach (var unused in _b.Graph.Input.Where(i => !read.Contains(i.Name)).ToList()) _b.Graph.Input.Remove(unused);
        }

        var proto = new ModelProto { IrVersion = 8, Graph = _b.Graph, ProducerName = "Quantize.Kernels GraphDef translation" };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 18 });
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = Domain, Version = 1 });
        return new OnnxModel(proto, _model.Source);
    }

    /// <summary>
    /// Bias Adds the GEMM of a Conv2D, or of a MatMul on 8-bit weights, takes in: x + bias after the product, with a
    /// constant float bias of one value per output column. (A float MatMul's Add is fused by the planner's MatMulAddFusion.)
    /// </summary>
    private void FindBiases(HashSet<string> needed, IReadOnlyList<string> fetches)
    {
        var readers = new Dictionary<string, List<TfNode>>(StringComparer.Ordinal);
        foreach (var node in _model.Proto.Node.Where(n => needed.Contains(n.Name)))
        {
            foreach (string input in node.Input.Where(i => !i.StartsWith('^')))
            {
                string value = Canonical(input);
                if (!readers.TryGetValue(value, out var list)) readers[value] = list = [];
                list.Add(node);
            }
        }
        foreach (var node in _model.Proto.Node.Where(n => needed.Contains(n.Name) && n.Op is "MatMul" or "Conv2D"))
        {
            if (fetches.Contains(node.Name) || _feeds.Contains(node.Name)) continue;
            if (node.Op == "MatMul" && (!_options.UseIntegerKernels || QuantizedWeight(In(node, 1)) is null)) continue;
            if (!readers.TryGetValue(node.Name, out var list) || list.Count != 1) continue;
            var add = list[0];
            if (add.Op is not ("BiasAdd" or "Add" or "AddV2") || InputCount(add) != 2 || _feeds.Contains(add.Name)) continue;
            string bias = In(add, 0) == node.Name ? In(add, 1) : In(add, 0);
            if (ConstantValue(bias) is not { ElementType: TensorElementType.Float32, Shape.Length: 1 } value) continue;
            long columns = node.Op == "Conv2D"
                ? ConstantValue(In(node, 1))?.Shape[^1] ?? QuantizedWeight(In(node, 1))?.Shape[^1] ?? -1
                : QuantizedWeight(In(node, 1)) is { } w ? (Bool(node, "transpose_b") ? w.Shape[0] : w.Shape[1]) : -1;
            if (value.Shape[0] != columns) continue;
            _biases[node.Name] = (add, bias);
            _absorbed.Add(add.Name);
        }
    }

    /// <summary>The nodes the fetches depend on through data edges, stopping at fed tensors (control edges are ignored: a frozen graph has no state to order).</summary>
    private HashSet<string> Needed(IReadOnlyList<string> fetches)
    {
        var needed = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>(fetches.Where(f => !_feeds.Contains(f)).Select(f => GraphDefInput.Parse(f).Node));
        while (pending.Count > 0)
        {
            string name = pending.Pop();
            if (!needed.Add(name)) continue;
            foreach (string input in _nodes[name].Input)
            {
                var reference = GraphDefInput.Parse(input);
                if (reference.IsControl || _feeds.Contains(Canonical(input))) continue;
                if (!_nodes.ContainsKey(reference.Node))
                    throw new InvalidModelException(_model.Source, $"node '{name}' reads '{input}', which no node produces.");
                pending.Push(reference.Node);
            }
        }
        return needed;
    }

    private static TypeProto PlaceholderType(TfNode node)
    {
        var tensorType = new TypeProto.Types.Tensor();
        if (node.Attr.TryGetValue("dtype", out var dtype))
        {
            var elementType = GraphDefElementTypes.ToElementType(dtype.Type);
            if (elementType != TensorElementType.Undefined && elementType != TensorElementType.String) tensorType.ElemType = OnnxElementTypes.ToOnnx(RuntimeType(elementType));
        }
        if (node.Attr.TryGetValue("shape", out var shape) && shape.Shape is { UnknownRank: false } known)
        {
            tensorType.Shape = new OnnxShape();
            foreach (var d in known.Dim)
            {
                tensorType.Shape.Dim.Add(d.Size >= 0
                    ? new OnnxShape.Types.Dimension { DimValue = d.Size }
                    : new OnnxShape.Types.Dimension { DimParam = "?" });
            }
        }
        return new TypeProto { TensorType = tensorType };
    }

    /// <summary>TensorFlow's quantized types run as the plain integer types of the same width.</summary>
    internal static TensorElementType RuntimeType(TensorElementType type) => type switch
    {
        TensorElementType.QUInt8 => TensorElementType.UInt8,
        TensorElementType.QInt8 => TensorElementType.Int8,
        TensorElementType.QInt32 => TensorElementType.Int32,
        TensorElementType.QInt16 => TensorElementType.Int16,
        TensorElementType.QUInt16 => TensorElementType.UInt16,
        _ => type,
    };

    // ---- Names and attributes ----

    /// <summary>The ONNX value for one of a node's data inputs.</summary>
    private string In(TfNode node, int index)
    {
        var data = node.Input.Where(i => !i.StartsWith('^')).ToList();
        if (index >= data.Count) throw Unsupported(node, $"it has {data.Count} inputs; input {index} is needed");
        return Canonical(data[index]);
    }

    private int InputCount(TfNode node) => node.Input.Count(i => !i.StartsWith('^'));

    /// <summary>Output <paramref name="index"/>'s value name; a fed output is replaced by its feed, so this node's copy goes nowhere.</summary>
    private string Out(TfNode node, int index = 0)
    {
        string name = index == 0 ? node.Name : $"{node.Name}:{index}";
        return _feeds.Contains(name) ? _b.Fresh(name + "/unused") : name;
    }

    private static long Int(TfNode node, string name, long fallback) => node.Attr.TryGetValue(name, out var a) ? a.I : fallback;

    private static float Float(TfNode node, string name, float fallback) => node.Attr.TryGetValue(name, out var a) ? a.F : fallback;

    private static bool Bool(TfNode node, string name, bool fallback = false) => node.Attr.TryGetValue(name, out var a) ? a.B : fallback;

    private static string String(TfNode node, string name, string fallback) => node.Attr.TryGetValue(name, out var a) ? a.S.ToStringUtf8() : fallback;

    private static long[] Ints(TfNode node, string name) => node.Attr.TryGetValue(name, out var a) && a.List is { } list ? list.I.ToArray() : [];

    private static TfDataType Type(TfNode node, string name, TfDataType fallback = TfDataType.DtFloat) =>
        node.Attr.TryGetValue(name, out var a) ? a.Type : fallback;

    /// <summary>The value of a constant input (through Identity nodes), or null when it is computed.</summary>
    private TensorData? ConstantValue(string value)
    {
        var reference = GraphDefInput.Parse(value);
        for (int depth = 0; depth < 16 && reference.Output == 0 && !_feeds.Contains(reference.Node); depth++)
        {
            if (!_nodes.TryGetValue(reference.Node, out var node)) return null;
            if (GraphDefModel.ConstValue(node) is { } tensor) return _model.ReadTensor(tensor, node.Name);
            if (node.Op is not ("Identity" or "StopGradient") || node.Input.Count == 0) return null;
            reference = GraphDefInput.Parse(node.Input[0]);
        }
        return null;
    }

    /// <summary>A constant integer input's values, which the translation needs (axes, shapes of padding).</summary>
    private long[] ConstantIntegers(TfNode node, int index)
    {
        var value = ConstantValue(In(node, index)) ?? throw Unsupported(node, $"input {index} must be a constant");
        return value.ElementType switch
        {
            TensorElementType.Int32 => value.AsSpan<int>().ToArray().Select(v => (long)v).ToArray(),
            TensorElementType.Int64 => value.ToArray<long>(),
            _ => throw Unsupported(node, $"input {index} must hold integers, not {value.ElementType.DisplayName()}"),
        };
    }

    private UnsupportedModelException Unsupported(TfNode node, string why) =>
        new(_model.Source, $"node '{node.Name}' ({node.Op}) cannot be run: {why}.");

    /// <summary>An int32 or int64 value as int64 (ONNX shapes and axes are int64).</summary>
    private string AsInt64(TfNode node, string value) => Cast(node, value, TensorElementType.Int64);

    private string Cast(TfNode node, string value, TensorElementType type)
    {
        string output = _b.Fresh(node.Name + "/Cast");
        var cast = _b.Node("Cast", node.Name, [value], [output]);
        OnnxGraphBuilder.Attribute(cast, "to", OnnxElementTypes.ToOnnx(type));
        return output;
    }

    private string Transpose(TfNode node, string value, params long[] permutation)
    {
        string output = _b.Fresh(node.Name + "/Transpose");
        var transpose = _b.Node("Transpose", node.Name, [value], [output]);
        OnnxGraphBuilder.Attribute(transpose, "perm", permutation);
        return output;
    }

    private static readonly long[] ToNchw = [0, 3, 1, 2], ToNhwc = [0, 2, 3, 1];

    private void RequireNhwc(TfNode node)
    {
        string format = String(node, "data_format", "NHWC");
        if (format != "NHWC") throw Unsupported(node, $"data_format {format} (only NHWC)");
    }
}
