namespace Quantize.Kernels.Models;

/// <summary>What a stored tensor is, known without reading its data.</summary>
/// <param name="Name">The tensor's name (initializer, Const node or Constant output).</param>
/// <param name="ElementType">The element type.</param>
/// <param name="Shape">The dimensions; empty for a scalar.</param>
/// <param name="ElementCount">The number of elements.</param>
/// <param name="ByteCount">The packed size in bytes (0 for strings).</param>
/// <param name="IsExternal">True if the bytes live in an external data file.</param>
public sealed record StoredTensorInfo(string Name, TensorElementType ElementType, long[] Shape, long ElementCount, long ByteCount, bool IsExternal);
