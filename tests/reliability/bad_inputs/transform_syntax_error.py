def broken(record)
    return record
