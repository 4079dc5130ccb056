namespace Quantize.Kernels.Models;

/// <summary>The serialized form of a model.</summary>
public enum ModelFormat
{
    /// <summary>An ONNX <c>ModelProto</c> (<c>.onnx</c>).</summary>
    Onnx,

    /// <summary>A TensorFlow frozen <c>GraphDef</c> (<c>.pb</c>).</summary>
    GraphDef,
}
