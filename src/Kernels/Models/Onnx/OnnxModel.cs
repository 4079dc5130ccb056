namespace Quantize.Kernels.Models.Onnx;

/// <summary>
/// An ONNX model: the <see cref="ModelProto"/> as parsed (fields we do not model are kept and
/// written back), the folder its external data is resolved in, and tensor access.
/// </summary>
public sealed class OnnxModel : Model
{
    private OnnxModel(ModelProto proto, string source, string? sourcePath, string? baseDirectory)
        : base(source, sourcePath)
    {
        Proto = proto;
        BaseDirectory = baseDirectory;
    }

    /// <summary>Wraps a model built in memory. External data, if any, is resolved in <paramref name="baseDirectory"/>.</summary>
    public OnnxModel(ModelProto proto, string source = "model.onnx", string? baseDirectory = null)
        : this(proto ?? throw new ArgumentNullException(nameof(proto)), source, null, baseDirectory)
    {
    }

    /// <inheritdoc />
    public override ModelFormat Format => ModelFormat.Onnx;

    /// <summary>The model message. Changes to it are saved by <see cref="Save"/>.</summary>
    public ModelProto Proto { get; }

    /// <summary>The model's main graph.</summary>
    public GraphProto Graph => Proto.Graph;

    /// <summary>The folder external data is resolved in (the model file's folder), if known.</summary>
    public string? BaseDirectory { get; }

    /// <summary>Loads an ONNX model file.</summary>
    /// <exception cref="InvalidModelException">The file is missing, not ONNX, or inconsistent.</exception>
    public static new OnnxModel Load(string path, ModelLoadOptions? options = null) =>
        Expect(Model.Load(path, With(options)));

    /// <summary>Loads an ONNX model from bytes, e.g. an embedded resource.</summary>
    /// <exception cref="InvalidModelException">The bytes are not ONNX or are inconsistent.</exception>
    public static new OnnxModel Load(ReadOnlyMemory<byte> bytes, string name, ModelLoadOptions? options = null) =>
        Expect(Model.Load(bytes, name, With(options)));

    /// <summary>Loads an ONNX model from a stream.</summary>
    /// <exception cref="InvalidModelException">The content is not ONNX or is inconsistent.</exception>
    public static new OnnxModel Load(Stream stream, string name, ModelLoadOptions? options = null) =>
        Expect(Model.Load(stream, name, With(options)));

    private static ModelLoadOptions With(ModelLoadOptions? options) => new()
    {
        BaseDirectory = options?.BaseDirectory,
        Validate = options?.Validate ?? true,
        Format = ModelFormat.Onnx,
    };

    private static OnnxModel Expect(Model model) => (OnnxModel)model;

    internal static OnnxModel Parse(ReadOnlyMemory<byte> bytes, string source, string? fullPath, string? baseDirectory, bool validate)
    {
        var proto = ParseMessage(ModelProto.Parser, bytes, source, "ONNX model");
        if (proto.Graph is null)
            throw new InvalidModelException(source, "is not an ONNX model: it has no graph. If it is a TensorFlow GraphDef, check the file's content; otherwise export the model again.");
        var model = new OnnxModel(proto, source, fullPath, baseDirectory);
        if (validate) model.Validate();
        return model;
    }

    /// <summary>
    /// Checks the model: every stored tensor's data matches its shape and type (external files
    /// present and long enough), and every node input and graph output is produced by something.
    /// </summary>
    /// <exception cref="InvalidModelException">The first problem found.</exception>
    public void Validate()
    {
        foreach (var slot in TensorSlot.Enumerate(Proto))
            OnnxTensorCodec.Describe(slot.Tensor, this, slot.Name);
        OnnxGraphChecks.CheckValuesProduced(Graph, Source);
    }

    /// <inheritdoc />
    public override IEnumerable<StoredTensorInfo> DescribeStoredTensors() =>
        TensorSlot.Enumerate(Proto).Select(slot => OnnxTensorCodec.Describe(slot.Tensor, this, slot.Name));

    /// <summary>Describes a tensor of this model without reading its data.</summary>
    /// <exception cref="InvalidModelException">The tensor's data does not match its shape and type.</exception>
    public StoredTensorInfo Describe(TensorProto tensor) => OnnxTensorCodec.Describe(tensor, this);

    /// <summary>Decodes a tensor of this model (an initializer, a Constant value, a test-data tensor), reading external data if needed.</summary>
    /// <exception cref="InvalidModelException">The tensor is inconsistent or its external data cannot be read.</exception>
    public TensorData ReadTensor(TensorProto tensor) => OnnxTensorCodec.Read(tensor, this);

    /// <summary>The initializer named <paramref name="name"/> in the main graph, or null.</summary>
    public TensorProto? FindInitializer(string name) => Graph.Initializer.FirstOrDefault(t => t.Name == name);

    /// <summary>
    /// Saves the model to <paramref name="path"/> (and its external data file beside it), writing
    /// temporary files that are renamed into place only when complete.
    /// </summary>
    public void Save(string path, OnnxSaveOptions? options = null) => OnnxModelWriter.Save(this, path, options ?? new OnnxSaveOptions());

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">The model is too large for one protobuf message; save it with external data.</exception>
    public override byte[] ToByteArray()
    {
        using var buffer = new MemoryStream();
        OnnxModelWriter.WriteInline(this, buffer);
        return buffer.ToArray();
    }
}
