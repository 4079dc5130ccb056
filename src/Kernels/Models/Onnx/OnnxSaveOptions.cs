namespace Quantize.Kernels.Models.Onnx;

/// <summary>Where <see cref="OnnxModel.Save"/> puts tensor data.</summary>
public enum ExternalDataMode
{
    /// <summary>Inline, unless the model would pass protobuf's 2 GiB limit; then large tensors go to external data.</summary>
    Auto,

    /// <summary>Always inline; saving a model over the 2 GiB limit fails.</summary>
    Never,

    /// <summary>Initializers of at least <see cref="OnnxSaveOptions.SizeThreshold"/> bytes go to external data.</summary>
    Always,
}

/// <summary>Options for saving an ONNX model.</summary>
public sealed class OnnxSaveOptions
{
    /// <summary>The default file that external data goes to: the model file's name plus <c>.data</c>.</summary>
    public const string DefaultLocationSuffix = ".data";

    /// <summary>Where tensor data goes. Default <see cref="ExternalDataMode.Auto"/>.</summary>
    public ExternalDataMode ExternalData { get; init; } = ExternalDataMode.Auto;

    /// <summary>Tensors smaller than this many bytes stay inline (ONNX's own default is 1024).</summary>
    public long SizeThreshold { get; init; } = 1024;

    /// <summary>The external data file, relative to the model's folder. Default: the model's file name plus <c>.data</c>.</summary>
    public string? Location { get; init; }

    /// <summary>Tensors of at least this many bytes start at an offset that is a multiple of <see cref="Alignment"/>, so they can be memory-mapped.</summary>
    public long AlignThreshold { get; init; } = 1 << 20;

    /// <summary>The alignment of large tensors in the external data file (the page size).</summary>
    public int Alignment { get; init; } = 4096;

    /// <summary>
    /// The largest model written as one message in <see cref="ExternalDataMode.Auto"/> mode. Protobuf's
    /// limit is 2 GiB; a margin is kept for the graph itself. Lowered by tests.
    /// </summary>
    internal long InlineLimit { get; init; } = int.MaxValue - (64L << 20);
}
