using Google.Protobuf;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Models.TensorFlow;

namespace Quantize.Kernels.Models;

/// <summary>Options for loading a model.</summary>
public sealed class ModelLoadOptions
{
    /// <summary>
    /// The folder external data is resolved in. Defaults to the model file's folder; set it when
    /// loading an ONNX model with external data from a stream or bytes.
    /// </summary>
    public string? BaseDirectory { get; init; }

    /// <summary>The format to expect; null detects it from the content.</summary>
    public ModelFormat? Format { get; init; }

    /// <summary>
    /// Check the graph after parsing: every node input produced by something, every stored tensor's
    /// size consistent with its shape, external data present. On by default.
    /// </summary>
    public bool Validate { get; init; } = true;
}

/// <summary>
/// A model loaded from a file, a stream or bytes: an ONNX model (<see cref="OnnxModel"/>) or a
/// TensorFlow frozen graph (<see cref="GraphDefModel"/>). The format is detected from the content.
/// </summary>
public abstract class Model
{
    /// <summary>Protobuf refuses single messages of 2 GiB or more.</summary>
    internal const long MaxMessageBytes = int.MaxValue;

    private protected Model(string source, string? sourcePath)
    {
        Source = source;
        SourcePath = sourcePath;
    }

    /// <summary>The model's format.</summary>
    public abstract ModelFormat Format { get; }

    /// <summary>How errors name this model: its path, or the name given when loading from a stream or bytes.</summary>
    public string Source { get; }

    /// <summary>The full path of the file the model was loaded from, if any.</summary>
    public string? SourcePath { get; }

    /// <summary>Every stored tensor (initializers and constants, in every subgraph), described without reading data.</summary>
    public abstract IEnumerable<StoredTensorInfo> DescribeStoredTensors();

    /// <summary>Serializes the model into one buffer, with all tensor data inline.</summary>
    public abstract byte[] ToByteArray();

    /// <summary>Loads a model file.</summary>
    /// <exception cref="InvalidModelException">The file is missing, unreadable, not a model, or inconsistent.</exception>
    public static Model Load(string path, ModelLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
            throw new InvalidModelException(path, "is a folder, not a model file. Give the path of the .onnx or .pb file.");
        var file = new FileInfo(path);
        if (!file.Exists)
            throw new InvalidModelException(path, "file not found. Check the path.");
        if (file.Length == 0)
            throw new InvalidModelException(path, "the file is empty. It may not have been copied or downloaded completely.");
        if (file.Length >= MaxMessageBytes)
            throw new InvalidModelException(path, $"the file is {file.Length} bytes, above protobuf's 2 GiB limit for one message. Models this large keep their weights in external data files; export it that way.");

        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidModelException(path, $"cannot be read: {e.Message}", e);
        }
        string folder = options?.BaseDirectory ?? Path.GetDirectoryName(file.FullName)!;
        return Parse(bytes, path, file.FullName, folder, options);
    }

    /// <summary>Loads a model from a stream (read to its end). <paramref name="name"/> names it in errors.</summary>
    /// <exception cref="InvalidModelException">The content is not a model or is inconsistent.</exception>
    public static Model Load(Stream stream, string name, ModelLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (stream.CanSeek && stream.Length - stream.Position >= MaxMessageBytes)
            throw new InvalidModelException(name, "the stream is larger than protobuf's 2 GiB limit for one message. Use a model with external data.");
        using var buffer = new MemoryStream();
        try
        {
            stream.CopyTo(buffer);
        }
        catch (IOException e)
        {
            throw new InvalidModelException(name, $"cannot be read: {e.Message}", e);
        }
        return Parse(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), name, null, options?.BaseDirectory, options);
    }

    /// <summary>Loads a model from bytes, e.g. an embedded resource. <paramref name="name"/> names it in errors.</summary>
    /// <exception cref="InvalidModelException">The content is not a model or is inconsistent.</exception>
    public static Model Load(ReadOnlyMemory<byte> bytes, string name, ModelLoadOptions? options = null) =>
        Parse(bytes, name, null, options?.BaseDirectory, options);

    private static Model Parse(ReadOnlyMemory<byte> bytes, string source, string? fullPath, string? baseDirectory, ModelLoadOptions? options)
    {
        if (bytes.IsEmpty)
            throw new InvalidModelException(source, "the model is empty (0 bytes). It may not have been copied or downloaded completely.");
        var format = options?.Format ?? ModelFormatDetector.Detect(bytes.Span, fullPath ?? source)
            ?? throw new InvalidModelException(source, "is neither an ONNX model nor a TensorFlow GraphDef: the bytes are not a protobuf message (truncated, corrupt, or another kind of file).");
        bool validate = options?.Validate ?? true;
        return format switch
        {
            ModelFormat.Onnx => OnnxModel.Parse(bytes, source, fullPath, baseDirectory, validate),
            _ => GraphDefModel.Parse(bytes, source, fullPath, validate),
        };
    }

    /// <summary>Parses one protobuf message, turning every parser failure into a clear error.</summary>
    private protected static T ParseMessage<T>(MessageParser<T> parser, ReadOnlyMemory<byte> bytes, string source, string formatName)
        where T : IMessage<T>
    {
        try
        {
            return parser.ParseFrom(new System.Buffers.ReadOnlySequence<byte>(bytes));
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidModelException(source, $"is not a valid {formatName}: {e.Message.TrimEnd('.')}. The file may be truncated or corrupt; export or copy it again.", e);
        }
    }

    /// <summary>Writes through a temporary file in the same folder, renamed over <paramref name="path"/> when complete.</summary>
    private protected static void WriteAtomically(string path, Action<Stream> write) => IO.AtomicFile.Write(path, write);
}
