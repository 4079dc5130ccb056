using System.Globalization;
using Google.Protobuf;

namespace Quantize.Kernels.Models.TensorFlow;

/// <summary>A reference to a node output in a GraphDef input list: <c>name</c>, <c>name:N</c> or <c>^name</c>.</summary>
/// <param name="Node">The producing node's name.</param>
/// <param name="Output">The output index (0 when not written).</param>
/// <param name="IsControl">True for a control dependency (<c>^name</c>), which carries no data.</param>
public readonly record struct GraphDefInput(string Node, int Output, bool IsControl)
{
    /// <summary>Parses one entry of <c>NodeDef.input</c>.</summary>
    public static GraphDefInput Parse(string input)
    {
        if (input.StartsWith('^')) return new GraphDefInput(input[1..], 0, true);
        int colon = input.LastIndexOf(':');
        if (colon > 0 && int.TryParse(input.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            return new GraphDefInput(input[..colon], index, false);
        return new GraphDefInput(input, 0, false);
    }
}

/// <summary>
/// A TensorFlow frozen graph: the <see cref="GraphDef"/> as parsed (fields we do not model, such as
/// the function library, are kept and written back), with access to its constant tensors.
/// </summary>
public sealed class GraphDefModel : Model
{
    private GraphDefModel(GraphDef proto, string source, string? sourcePath) : base(source, sourcePath)
    {
        Proto = proto;
    }

    /// <summary>Wraps a graph built in memory.</summary>
    public GraphDefModel(GraphDef proto, string source = "graph.pb")
        : this(proto ?? throw new ArgumentNullException(nameof(proto)), source, null)
    {
    }

    /// <inheritdoc />
    public override ModelFormat Format => ModelFormat.GraphDef;

    /// <summary>The graph message. Changes to it are saved by <see cref="Save"/>.</summary>
    public GraphDef Proto { get; }

    /// <summary>Loads a frozen GraphDef file.</summary>
    /// <exception cref="InvalidModelException">The file is missing, not a GraphDef, or inconsistent.</exception>
    public static new GraphDefModel Load(string path, ModelLoadOptions? options = null) =>
        (GraphDefModel)Model.Load(path, new ModelLoadOptions { Format = ModelFormat.GraphDef, Validate = options?.Validate ?? true });

    /// <summary>Loads a frozen GraphDef from bytes.</summary>
    /// <exception cref="InvalidModelException">The bytes are not a GraphDef or are inconsistent.</exception>
    public static new GraphDefModel Load(ReadOnlyMemory<byte> bytes, string name, ModelLoadOptions? options = null) =>
        (GraphDefModel)Model.Load(bytes, name, new ModelLoadOptions { Format = ModelFormat.GraphDef, Validate = options?.Validate ?? true });

    internal static GraphDefModel Parse(ReadOnlyMemory<byte> bytes, string source, string? fullPath, bool validate)
    {
        var proto = ParseMessage(GraphDef.Parser, bytes, source, "TensorFlow GraphDef");
        if (proto.Node.Count == 0)
            throw new InvalidModelException(source, "is not a TensorFlow GraphDef with any nodes. If it is an ONNX model, check the file's content; otherwise freeze the graph again.");
        var model = new GraphDefModel(proto, source, fullPath);
        if (validate) model.Validate();
        return model;
    }

    /// <summary>
    /// Checks the graph: node names present and unique, every input naming an existing node, every
    /// constant tensor's data consistent with its shape.
    /// </summary>
    /// <exception cref="InvalidModelException">The first problem found.</exception>
    public void Validate()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in Proto.Node)
        {
            if (node.Name.Length == 0)
                throw new InvalidModelException(Source, $"a {node.Op} node has no name. Freeze the graph again.");
            if (node.Op.Length == 0)
                throw new InvalidModelException(Source, $"node '{node.Name}' has no op type. Freeze the graph again.");
            if (!names.Add(node.Name))
                throw new InvalidModelException(Source, $"two nodes are named '{node.Name}'. Freeze the graph again.");
        }
        foreach (var node in Proto.Node)
        {
            foreach (string input in node.Input)
            {
                var reference = GraphDefInput.Parse(input);
                if (!names.Contains(reference.Node))
                    throw new InvalidModelException(Source, $"node '{node.Name}' ({node.Op}) reads '{input}', but the graph has no node '{reference.Node}'. The graph is incomplete; freeze it again.");
            }
        }
        foreach (var _ in DescribeStoredTensors()) { }
    }

    /// <summary>The constant tensors: the <c>value</c> of every <c>Const</c> node, named after the node.</summary>
    public override IEnumerable<StoredTensorInfo> DescribeStoredTensors()
    {
        foreach (var node in Proto.Node)
        {
            if (ConstValue(node) is { } tensor)
                yield return GraphDefTensorCodec.Describe(tensor, node.Name, Source);
        }
    }

    /// <summary>The node named <paramref name="name"/>, or null.</summary>
    public NodeDef? FindNode(string name) => Proto.Node.FirstOrDefault(n => n.Name == name);

    /// <summary>The <c>value</c> tensor of a <c>Const</c> node, or null for other nodes.</summary>
    public static TensorProto? ConstValue(NodeDef node) =>
        node.Op == "Const" && node.Attr.TryGetValue("value", out var value) && value.ValueCase == AttrValue.ValueOneofCase.Tensor
            ? value.Tensor
            : null;

    /// <summary>Decodes a tensor of this graph (a Const value), padding short value lists as TensorFlow does.</summary>
    /// <exception cref="InvalidModelException">The tensor is inconsistent.</exception>
    public TensorData ReadTensor(TensorProto tensor, string name) => GraphDefTensorCodec.Read(tensor, name, Source);

    /// <summary>Describes a tensor of this graph without decoding it.</summary>
    public StoredTensorInfo Describe(TensorProto tensor, string name) => GraphDefTensorCodec.Describe(tensor, name, Source);

    /// <summary>Saves the graph through a temporary file renamed into place when complete.</summary>
    public void Save(string path) => WriteAtomically(path, stream => Proto.WriteTo(stream));

    /// <inheritdoc />
    public override byte[] ToByteArray() => Proto.ToByteArray();
}
